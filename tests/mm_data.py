"""Tiny generated data sets in the layouts mmseg (ADE20K) and mmdet (COCO) expect."""
import json
import os

import numpy as np
from PIL import Image


def make_ade(root, n_train=4, n_val=2, size=(72, 96), seed=0):
    """ADEChallengeData2016 layout: images/{training,validation}/*.jpg and annotations/*/*.png
    (0 = ignore, 1..150 = classes); each image is a few coloured rectangles of a few classes."""
    rng = np.random.RandomState(seed)
    for split, count in (('training', n_train), ('validation', n_val)):
        os.makedirs(os.path.join(root, 'images', split), exist_ok=True)
        os.makedirs(os.path.join(root, 'annotations', split), exist_ok=True)
        for i in range(count):
            label = np.ones(size, np.uint8)
            image = np.full(size + (3,), 40, np.uint8)
            for cls in (2, 3, 5):
                y, x = rng.randint(0, size[0] // 2), rng.randint(0, size[1] // 2)
                label[y:y + size[0] // 2, x:x + size[1] // 2] = cls
                image[y:y + size[0] // 2, x:x + size[1] // 2] = (cls * 40, 255 - cls * 30, cls * 20)
            name = f'ADE_{split}_{i:08d}'
            Image.fromarray(image).save(os.path.join(root, 'images', split, name + '.jpg'))
            Image.fromarray(label).save(os.path.join(root, 'annotations', split, name + '.png'))
    return root


def make_coco(root, n_train=4, n_val=2, size=(80, 96), seed=0):
    """COCO layout: {train,val}2017/*.jpg and annotations/instances_{train,val}2017.json with
    boxes and polygon masks of the first COCO classes."""
    rng = np.random.RandomState(seed)
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    from mmdet.datasets import CocoDataset
    # all 80 COCO classes (the metric maps every predicted label to one); objects of the first 3
    categories = [{'id': i + 1, 'name': name} for i, name in enumerate(CocoDataset.METAINFO['classes'])]
    for split, count in (('train2017', n_train), ('val2017', n_val)):
        os.makedirs(os.path.join(root, split), exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            image = np.full(size + (3,), 30, np.uint8)
            for k, cat in enumerate(categories[:3]):
                h, w = rng.randint(16, size[0] // 2), rng.randint(16, size[1] // 2)
                y, x = rng.randint(0, size[0] - h), rng.randint(0, size[1] - w)
                image[y:y + h, x:x + w] = (80 * (k + 1), 200 - 60 * k, 50 + 60 * k)
                polygon = [x, y, x + w, y, x + w, y + h, x, y + h]
                annotations.append(dict(
                    id=len(annotations) + 1, image_id=i + 1, category_id=cat['id'], bbox=[x, y, w, h],
                    area=float(w * h), iscrowd=0, segmentation=[[float(v) for v in polygon]]))
            name = f'{i:012d}.jpg'
            Image.fromarray(image).save(os.path.join(root, split, name))
            images.append(dict(id=i + 1, file_name=name, height=size[0], width=size[1]))
        with open(os.path.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    return root
