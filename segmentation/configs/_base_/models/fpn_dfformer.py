# Semantic FPN (mmseg's) with a DFFormer backbone: filters built for 512x512 ADE20K crops,
# ImageNet weights from the authors' release (filters resized to 512 at load).
_base_ = 'mmseg::_base_/models/fpn_r50.py'
custom_imports = dict(imports=['mmadapter'], allow_failed_imports=False)
# Training batches are padded to the 512x512 crop, as in mmseg's sem_fpn ADE20K config
# (without a size, mmseg's stack_batch asserts 'only one of size and size_divisor should be valid').
data_preprocessor = dict(size=(512, 512))
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='DFFormerBackbone',
        arch='dfformer_s18',
        img_size=512,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='release')),
    neck=dict(in_channels=[64, 128, 320, 512], out_channels=256, num_outs=4),
    decode_head=dict(channels=128, num_classes=150))
