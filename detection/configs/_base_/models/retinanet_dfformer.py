# mmdet's RetinaNet with a DFFormer backbone: filters built for 800x800, ImageNet weights from
# the authors' release (filters resized at load). The FPN starts at stage 1, so the stage-0
# output norm is an identity (the authors' FORK_LAST3=1).
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
custom_imports = dict(imports=['mmadapter'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='DFFormerBackbone',
        arch='dfformer_s18',
        img_size=800,
        out_indices=(0, 1, 2, 3),
        stage0_output_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint='release')),
    neck=dict(in_channels=[64, 128, 320, 512], start_level=1, add_extra_convs='on_input', num_outs=5))
