#!/usr/bin/env python3
"""MACs and parameters of a config: python detection/tools/get_flops.py CONFIG --shape 800 1333 (see mm_tools.py)."""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
import mm_tools  # noqa: E402

if __name__ == '__main__':
    mm_tools.flops('mmdet')
