#!/usr/bin/env python3
"""Train a Semantic FPN segmentor: python segmentation/tools/train.py CONFIG [--work-dir ...] (see mm_tools.py)."""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
import mm_tools  # noqa: E402

if __name__ == '__main__':
    mm_tools.train('mmseg')
