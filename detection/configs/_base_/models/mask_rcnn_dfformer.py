# mmdet's Mask R-CNN (FPN) with a DFFormer backbone: filters built for 800x800, ImageNet weights
# from the authors' release (filters resized at load); all four stage outputs feed the FPN.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['mmadapter'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='DFFormerBackbone',
        arch='dfformer_s18',
        img_size=800,
        out_indices=(0, 1, 2, 3),
        stage0_output_norm=True,
        init_cfg=dict(type='Pretrained', checkpoint='release')),
    neck=dict(in_channels=[64, 128, 320, 512]))
