_base_ = [
    '../_base_/models/fpn_dfformer.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', '../_base_/schedules/schedule_40k_adamw.py'
]
# ADE20K, 512x512 crops, batch 4 per GPU (x 8 GPUs)
model = dict(backbone=dict(arch='dfformer_s36'), neck=dict(in_channels=[64, 128, 320, 512]))
