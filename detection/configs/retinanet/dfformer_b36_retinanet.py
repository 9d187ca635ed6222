_base_ = [
    '../_base_/models/retinanet_dfformer.py', 'mmdet::_base_/datasets/coco_detection.py',
    '../_base_/schedules/adamw_1x.py', 'mmdet::_base_/default_runtime.py',
    'mmdet::retinanet/retinanet_tta.py'
]
# COCO 1333x800 with flip, batch 2 per GPU (x 8 GPUs)
model = dict(backbone=dict(arch='dfformer_b36'), neck=dict(in_channels=[128, 256, 512, 768]))
