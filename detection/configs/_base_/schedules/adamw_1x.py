# The authors' RetinaNet recipe: 12 epochs (steps at 8 and 11, 500-iteration linear warmup from
# 0.001, as mmdet's 1x), AdamW lr 1e-4, weight decay 0.05, mixed precision; batch 2 x 8 GPUs.
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'
optim_wrapper = dict(
    type='AmpOptimWrapper', loss_scale='dynamic',
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, weight_decay=0.05))
