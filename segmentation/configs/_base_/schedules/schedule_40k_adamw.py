# The authors' ADE20K schedule: AdamW lr 2e-4, weight decay 1e-4, poly (power 0.9) to 0, 40k iterations.
_base_ = 'mmseg::_base_/schedules/schedule_40k.py'
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=2e-4, weight_decay=1e-4))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=40000, by_epoch=False)]
