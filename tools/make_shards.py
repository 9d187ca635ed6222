#!/usr/bin/env python3
"""Write an ImageNet-style folder as webdataset tar shards, for `train.py / validate.py --dataset wds/NAME OUT`
(timm's wds reader): a few large files instead of 1.28M small ones on a network file system.

    .venv/bin/python tools/make_shards.py /path/to/imagenet /path/to/shards --max-size 1e9      # train/ and val/
    .venv/bin/python tools/make_shards.py --verify /path/to/shards

Each sample is the image file's bytes unchanged (<key>.jpg / .png / .webp) and its class index
(<key>.cls); training samples are shuffled across shards (a shard then holds all classes). The
shard count is what --max-count samples and --max-size bytes per shard need, rounded up to a
multiple of --shards-multiple, and the samples are spread evenly over the shards (counts within
one). timm's reader gives each reader (a loader worker of a process) every readers-th shard of the
epoch and an equal share of samples: with --shards-multiple set to the readers, each reader gets as
many shards and each sample is read once per epoch (but for one per reader where counts differ).
OUT gets <name>-<split>-NNNNNN.tar per split ('train', 'validation'), classes.txt (the class folder
names in index order) and _info.json (timm's split index: file names, samples per shard; here also
each shard's byte size and the class names, which train.py / validate.py check before reading).
Shards and the index are written through a temporary file, so an interrupted run leaves no partial
shard under its final name. --verify reads every shard to its end and checks each sample's image
and class index against the index.
"""
import argparse
import io
import json
import os
import random
import sys
import tarfile

from engine.cli import ArgumentParser, check_numbers, run_cli
from engine.data import IMG_EXTENSIONS, DataError, check_class_folders, find_split_dir, shard_problem
from engine.files import atomic_open, atomic_path

SPLITS = (('train', 'train'), ('val', 'validation'))  # (folder looked for, split name in the index)
EXT = {'.jpg': 'jpg', '.jpeg': 'jpg', '.png': 'png', '.webp': 'webp'}  # what timm's reader decodes


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('data', help='ImageNet-style folder with train/ and val/ (or, with --verify, the shard folder)')
    p.add_argument('out', nargs='?', help='folder for the shards')
    p.add_argument('--name', default='imagenet', help='shard file name prefix')
    p.add_argument('--max-count', type=int, default=10000, help='samples per shard at most')
    p.add_argument('--max-size', type=float, default=1e9, help='bytes per shard at most (a larger image gets '
                   'a shard of its own)')
    p.add_argument('--shards-multiple', type=int, default=1, help='make the shard count of each split a multiple '
                   'of this: the readers of the training (processes x loader workers), so that each reads as many '
                   'shards')
    p.add_argument('--seed', type=int, default=0, help='shuffle of the training samples across shards')
    p.add_argument('--verify', action='store_true', help='check the shards in DATA against their index')
    args = p.parse_args(argv)
    check_numbers(p, args)
    if not args.verify and not args.out:
        p.error('pass the folder for the shards (OUT), or --verify SHARDS')
    return args


def _samples(split_dir: str, classes: list) -> list:
    samples = []
    for index, name in enumerate(classes):
        for folder, _, files in sorted(os.walk(os.path.join(split_dir, name))):
            for file in sorted(files):
                ext = os.path.splitext(file)[1].lower()
                if ext in EXT:
                    samples.append((os.path.join(folder, file), index))
                elif ext in IMG_EXTENSIONS:
                    raise DataError(f'{os.path.join(folder, file)}: timm\'s shard reader decodes .jpg, .png and '
                                    '.webp only; convert the image')
    return samples


def _add(tar: tarfile.TarFile, name: str, data: bytes):
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644  # the same bytes from the same input
    tar.addfile(info, io.BytesIO(data))


def _shard_count(samples: list, max_count: int, max_size: float, multiple: int) -> int:
    """How many shards hold the samples in order within max_count and max_size, rounded up to a
    multiple of `multiple`."""
    count, in_shard, size = 0, 0, 0
    for path, _ in samples:
        # 512-byte tar headers and padding for the image and the label
        sample_size = 512 * (3 + -(-os.path.getsize(path) // 512))
        if not in_shard or in_shard >= max_count or size + sample_size > max_size:
            count, in_shard, size = count + 1, 0, 0
        in_shard, size = in_shard + 1, size + sample_size
    return -(-count // multiple) * multiple


def write_split(samples: list, out: str, prefix: str, max_count: int, max_size: float, multiple: int = 1) -> dict:
    """The samples as shards <prefix>-NNNNNN.tar of equal sample counts (within one); their index
    entry (timm's format + byte sizes)."""
    shards = _shard_count(samples, max_count, max_size, multiple)
    if shards > len(samples):
        raise DataError(f'{prefix}: {len(samples)} samples cannot fill {shards} shards (--shards-multiple '
                        f'{multiple}): lower --shards-multiple')
    filenames, lengths, sizes = [], [], []
    for i in range(shards):
        begin, end = len(samples) * i // shards, len(samples) * (i + 1) // shards
        name = f'{prefix}-{i:06d}.tar'
        with atomic_path(os.path.join(out, name)) as tmp, tarfile.open(tmp, 'w', format=tarfile.USTAR_FORMAT) as tar:
            for key in range(begin, end):
                path, label = samples[key]
                with open(path, 'rb') as f:
                    _add(tar, f'{key:08d}.{EXT[os.path.splitext(path)[1].lower()]}', f.read())
                _add(tar, f'{key:08d}.cls', str(label).encode())
        filenames.append(name)
        lengths.append(end - begin)
        sizes.append(os.path.getsize(os.path.join(out, name)))
    return {'num_samples': sum(lengths), 'filenames': filenames, 'shard_lengths': lengths, 'shard_bytes': sizes}


def make(args):
    classes = None
    info = {'name': args.name, 'splits': {}}
    for folder, split in SPLITS:
        split_dir = find_split_dir(args.data, folder)
        check_class_folders(split_dir)
        names = sorted(e.name for e in os.scandir(split_dir) if e.is_dir())
        if classes is not None and names != classes:
            raise DataError(f'{args.data}: train and val have different class folders; give both the same classes')
        classes = names
        samples = _samples(split_dir, classes)
        if split == 'train':
            random.Random(args.seed).shuffle(samples)
        os.makedirs(args.out, exist_ok=True)
        info['splits'][split] = {'name': split, **write_split(samples, args.out, f'{args.name}-{split}',
                                                              args.max_count, args.max_size, args.shards_multiple)}
        print(f'{split}: {len(samples)} samples in {len(info["splits"][split]["filenames"])} shards')
    info['classes'] = classes
    with atomic_open(os.path.join(args.out, 'classes.txt')) as f:
        f.write(''.join(f'{c}\n' for c in classes))
    with atomic_open(os.path.join(args.out, '_info.json')) as f:  # last: its presence means the set is complete
        json.dump(info, f, indent=1)
    print(f'{args.out}: {len(classes)} classes; use --dataset wds/{args.name} {args.out}')


def verify(root: str):
    info_path = os.path.join(root, '_info.json')
    if not os.path.isfile(info_path):
        raise DataError(f'{root} has no _info.json: not a shard folder written by tools/make_shards.py')
    with open(info_path) as f:
        info = json.load(f)
    num_classes = len(info.get('classes') or ()) or None
    for split, entry in info['splits'].items():
        for name, count, size in zip(entry['filenames'], entry['shard_lengths'], entry['shard_bytes']):
            path = os.path.join(root, name)
            problem = shard_problem(path, size)
            if problem:
                raise DataError(f'{path}: {problem}')
            try:
                with tarfile.open(path) as tar:
                    members = [m.name for m in tar.getmembers()]
            except (tarfile.TarError, OSError, EOFError) as e:
                raise DataError(f'{path}: unreadable shard ({e}); make the shards again') from None
            keys = {}
            for member in members:
                key, _, ext = member.partition('.')
                keys.setdefault(key, set()).add(ext)
            for key, exts in keys.items():
                if 'cls' not in exts or not exts & set(EXT.values()):
                    what = 'class index (.cls)' if 'cls' not in exts else 'image (.jpg/.png/.webp)'
                    raise DataError(f'{path}: sample {key} has no {what}; make the shards again')
            if len(keys) != count:
                raise DataError(f'{path}: {len(keys)} samples, the index says {count}; make the shards again')
            if num_classes:
                with tarfile.open(path) as tar:
                    for member in tar:
                        if member.name.endswith('.cls'):
                            label = int(tar.extractfile(member).read())
                            if not 0 <= label < num_classes:
                                raise DataError(f'{path}: {member.name} is class {label}, of {num_classes}')
        print(f'{split}: {entry["num_samples"]} samples in {len(entry["filenames"])} shards: ok')


def main(argv=None):
    args = parse_args(argv)
    verify(args.data) if args.verify else make(args)


if __name__ == '__main__':
    sys.exit(run_cli(main))
