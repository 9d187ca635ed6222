"""Datasets for train.py / validate.py: ImageNet-style folders (checked up front) and the
built-in `digits` data set (scikit-learn's 8x8 handwritten digits, no download)."""
import logging
import math
import os
from typing import Optional

import numpy as np
import torch
from PIL import Image
from timm.data import ImageDataset, auto_augment, create_dataset

_logger = logging.getLogger(__name__)

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')
SPLIT_NAMES = {'train': ('train', 'training'), 'validation': ('val', 'validation', 'valid', 'eval', 'evaluation')}


class DataError(ValueError):
    """Bad data location or content; the message says what to fix."""


def _posterize(img, bits_to_keep, **kwargs):
    """timm's posterize augmentation, but keeping 0 bits gives the black image older Pillow gave:
    Pillow 11+ rejects 0 bits ('bits must be between or equal to 1 and 8'), which timm's
    RandAugment 'inc1' ops reach at magnitude 10 (drawn by the authors' rand-m9-mstd0.5-inc1 for
    ~1 image in 50) and AutoAugment v0 asks for: a training run ended in a traceback mid-epoch."""
    if bits_to_keep <= 0:
        return Image.new(img.mode, img.size)
    return _timm_posterize(img, bits_to_keep, **kwargs)


_timm_posterize = auto_augment.posterize
for _name in ('Posterize', 'PosterizeIncreasing', 'PosterizeOriginal'):
    auto_augment.NAME_TO_OP[_name] = _posterize


class DigitsDataset:
    """scikit-learn's handwritten digits (1,797 8x8 images, 10 classes) as RGB PIL images.

    A fixed seeded split: 80% train, 20% validation. Images are upscaled by the loader's
    transforms to the requested input size.
    """
    num_classes = 10

    def __init__(self, split: str = 'train', transform=None, seed: int = 0):
        from sklearn.datasets import load_digits
        digits = load_digits()
        order = np.random.RandomState(seed).permutation(len(digits.target))
        n_train = int(0.8 * len(order))
        index = order[:n_train] if _canonical_split(split) == 'train' else order[n_train:]
        # 0..16 grey levels -> 0..255, replicated to RGB
        self.images = (digits.images[index] * (255.0 / 16.0)).round().astype(np.uint8)
        self.targets = digits.target[index].astype(np.int64)
        self.transform = transform
        self.target_transform = None

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        img = Image.fromarray(self.images[index], mode='L').convert('RGB')
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.targets[index])


class CheckedImageDataset(ImageDataset):
    """timm's folder dataset, but an unreadable image stops with its path instead of being
    skipped with a warning (a silently smaller data set changes the results)."""

    def __getitem__(self, index):
        file, target = self.reader[index][:2]
        try:
            img = Image.open(file)
            img = img.convert(self.input_img_mode) if self.input_img_mode else img
        except (OSError, ValueError) as e:
            path = self.reader.filename(index, absolute=True)
            reason = str(e).split(' <')[0]  # PIL appends the file object's repr
            raise DataError(f'{path}: unreadable image ({reason}); remove or replace the file') from None
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


def _canonical_split(split: str) -> str:
    for canonical, names in SPLIT_NAMES.items():
        if split in names or split == canonical:
            return canonical
    return split


def find_split_dir(root: str, split: str) -> str:
    """The folder of `split` under `root` (e.g. train/, val/ or validation/)."""
    if not root:
        raise DataError('no data directory given: pass the ImageNet-style folder (with train/ and val/) '
                        'as the first argument or --data-dir, or use --dataset digits')
    if not os.path.isdir(root):
        raise DataError(f'data directory {root} does not exist: pass a folder with train/ and val/ class '
                        'folders, or use --dataset digits')
    for name in (split,) + SPLIT_NAMES.get(_canonical_split(split), ()):
        if os.path.isdir(os.path.join(root, name)):
            return os.path.join(root, name)
    names = ', '.join(SPLIT_NAMES.get(_canonical_split(split), (split,)))
    raise DataError(f'{root} has no {split} folder (looked for {names}): '
                    'an ImageNet-style layout is <root>/train/<class>/<image> and <root>/val/<class>/<image>')


def check_class_folders(split_dir: str):
    """Every class folder holds at least one image (a cheap scan: stops at the first image)."""
    classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir())
    if not classes:
        raise DataError(f'{split_dir} has no class folders: expected {split_dir}/<class>/<image>')
    for name in classes:
        folder = os.path.join(split_dir, name)
        has_image = False
        for _, _, files in os.walk(folder):
            if any(f.lower().endswith(IMG_EXTENSIONS) for f in files):
                has_image = True
                break
        if not has_image:
            raise DataError(f'class folder {folder} has no images: add images or remove the folder')


def shard_problem(path: str, size: Optional[int]) -> str:
    """'' if the shard `path` exists with the byte size of its index entry, else what is wrong."""
    if not os.path.isfile(path):
        return 'missing shard; make the shards again (tools/make_shards.py) or copy it'
    if size is not None and os.path.getsize(path) != size:
        return (f'truncated or altered shard ({os.path.getsize(path)} bytes, the index says {size}); '
                'copy it again or make the shards again (tools/make_shards.py)')
    return ''


def _fatal_shard_errors():
    """timm's wds reader logs and skips an unreadable shard or a sample without a label (a
    silently smaller data set): make them errors naming the shard. Its module-level error handler
    and decoder are what its pipeline uses, so those two are wrapped."""
    from timm.data.readers import reader_wds
    if getattr(reader_wds._decode, 'names_shard', False):
        return
    decode = reader_wds._decode

    def raise_error(exn):
        if isinstance(exn, DataError):
            raise exn
        url = next((a for a in getattr(exn, 'args', ()) if isinstance(a, str) and '.tar' in a), 'a shard')
        raise DataError(f'{url}: unreadable shard ({type(exn).__name__}: {exn.args[0] if exn.args else exn}); '
                        'copy it again or make the shards again (tools/make_shards.py)') from None

    def decode_naming_shard(sample, **kwargs):
        try:
            return decode(sample, **kwargs)
        except (KeyError, ValueError, OSError) as e:
            what = 'no class index (.cls)' if isinstance(e, KeyError) else f'an unreadable sample ({e})'
            raise DataError(f'{sample.get("__url__", "a shard")}: sample {sample.get("__key__")} has {what}; '
                            'make the shards again (tools/make_shards.py)') from None

    decode_naming_shard.names_shard = True
    reader_wds._decode, reader_wds.log_and_continue = decode_naming_shard, raise_error


def check_shard_readers(root: str, split: str, shards: int, processes: int, workers: int, is_training: bool):
    """timm's wds reader hands each reader (a loader worker of a process) every readers-th shard of
    the epoch's shuffled list and has it yield an equal share of the samples. A reader without a
    shard yields nothing: its process takes fewer steps than the others and, distributed, they wait
    for it forever. Readers with unequal shard counts repeat some samples and skip others."""
    readers = processes * max(1, workers)
    if not is_training and processes == 1:
        return  # (one process evaluates every shard whatever its workers get)
    procs = f'{processes} process{"es" if processes > 1 else ""}'
    who = f'{readers} readers ({procs} x {workers} loader worker{"s" if workers > 1 else ""})' if workers else \
        f'{readers} reader{"s" if readers > 1 else ""} ({procs} without loader workers)'
    if shards < readers:
        fewer = f'pass -j {shards // processes}' if shards >= processes else \
            f'run at most {shards} process{"es" if shards > 1 else ""}'
        raise DataError(f'{root}: {shards} {split} shard{"s" if shards > 1 else ""} for {who}: every reader '
                        f'needs a shard of its own; {fewer}, or make the shards with --shards-multiple {readers} '
                        '(tools/make_shards.py)')
    if is_training and shards % readers:
        _logger.warning(f'{root}: {shards} {split} shards for {who}: readers get unequal shares, so each epoch '
                        f'some samples are read twice and others not at all; make the shards with --shards-multiple '
                        f'{readers} (tools/make_shards.py)')


def build_shards(name: str, root: Optional[str], split: str, is_training: bool, processes: int = 1,
                 workers: int = 0, **kwargs):
    """timm's webdataset reader over shards written by tools/make_shards.py (or any with timm's
    _info.json): the index, every shard's presence and size, and the shard count against the
    readers (`processes` x loader `workers`) are checked up front; the class count comes from the index."""
    import json
    info_path = os.path.join(root or '', '_info.json')
    if not root or not os.path.isfile(info_path):
        raise DataError(f'--dataset {name}: {root or "no folder given"} has no _info.json; pass the folder written '
                        'by tools/make_shards.py')
    with open(info_path) as f:
        info = json.load(f)
    split = {'val': 'validation'}.get(split, split)
    entry = info.get('splits', {}).get(split)
    if entry is None:
        raise DataError(f'{root} has no {split} split (it has: {", ".join(info.get("splits", {}))}); pass '
                        '--train-split / --val-split / --split')
    for i, file in enumerate(entry['filenames']):
        sizes = entry.get('shard_bytes')
        problem = shard_problem(os.path.join(root, file), sizes[i] if sizes else None)
        if problem:
            raise DataError(f'{os.path.join(root, file)}: {problem}')
    check_shard_readers(root, split, len(entry['filenames']), processes, workers, is_training)
    _fatal_shard_errors()
    dataset = create_dataset(name, root=root, split=split, is_training=is_training, **kwargs)
    if info.get('classes'):
        dataset.num_classes = len(info['classes'])
    return dataset


def build_dataset(name: str, root: Optional[str], split: str, is_training: bool, class_map: str = '',
                  batch_size: int = 1, seed: int = 42, processes: int = 1, workers: int = 0):
    """A dataset for timm's create_loader: 'digits', an ImageNet-style folder ('' / 'folder'),
    webdataset shards ('wds/NAME', see build_shards; read by `processes` x loader `workers`) or any
    timm dataset name (torch/..., hfds/...)."""
    if name == 'digits':
        return DigitsDataset(split)
    if name in ('', 'folder', 'imagefolder'):
        split_dir = find_split_dir(root, split)
        check_class_folders(split_dir)
        return CheckedImageDataset(split_dir, class_map=class_map)
    if name.lower().startswith('wds/'):
        return build_shards(name, root, split, is_training, processes, workers, class_map=class_map or None,
                            batch_size=batch_size, seed=seed)
    return create_dataset(name, root=root, split=split, is_training=is_training, class_map=class_map)


def _class_names(dataset) -> Optional[list]:
    class_to_idx = getattr(getattr(dataset, 'reader', None), 'class_to_idx', None)
    return sorted(class_to_idx, key=class_to_idx.get) if class_to_idx else None


def check_same_classes(train_dataset, eval_dataset, class_map: str = ''):
    """Train and validation folders hold the same classes: labels are indices of the sorted class
    folder names of each split, so another set of folders would silently misalign them."""
    train_names, eval_names = _class_names(train_dataset), _class_names(eval_dataset)
    if class_map or train_names is None or eval_names is None or train_names == eval_names:
        return
    only_train = sorted(set(train_names) - set(eval_names))
    only_eval = sorted(set(eval_names) - set(train_names))

    def some(names):
        return ', '.join(names[:5]) + (f' (+{len(names) - 5} more)' if len(names) > 5 else '')
    differ = '; '.join(f'only in {split}: {some(names)}' for split, names in (
        ('train', only_train), ('validation', only_eval)) if names)
    raise DataError(
        f'the train and validation folders have different classes ({len(train_names)} vs {len(eval_names)}; '
        f'{differ}): labels would not match; give both splits the same class folders, or --class-map')


def dataset_num_classes(dataset) -> Optional[int]:
    if hasattr(dataset, 'num_classes'):
        return dataset.num_classes
    reader = getattr(dataset, 'reader', None)
    class_to_idx = getattr(reader, 'class_to_idx', None)
    return len(class_to_idx) if class_to_idx else None


class ResumableSampler(torch.utils.data.Sampler):
    """Every sample once per epoch, in an order fixed by (seed, epoch), rank r taking every
    world-size-th index from r (torch's DistributedSampler's split; the order is padded to a
    multiple of the world size the same way). `set_epoch(epoch, start)` skips the first `start`
    entries of the epoch's order: the samples the ranks had consumed when the run stopped (with
    drop_last batches these are exactly the first steps * batch size * world size), so a resumed
    run sees the epoch's remaining samples in the same order without loading the others."""

    def __init__(self, num_samples: int, num_replicas: int = 1, rank: int = 0, seed: int = 0):
        self.num_samples, self.num_replicas, self.rank, self.seed = num_samples, num_replicas, rank, seed
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0):
        self.epoch, self.start = epoch, start

    def _order(self) -> list:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.num_samples, generator=g).tolist()
        padded = -(-self.num_samples // self.num_replicas) * self.num_replicas
        order += (order * math.ceil(padded / max(1, len(order))))[:padded - len(order)]
        return order[self.start:]

    def __iter__(self):
        order = self._order()
        per_rank = len(order) // self.num_replicas
        return iter(order[self.rank::self.num_replicas][:per_rank])

    def __len__(self):
        return (-(-self.num_samples // self.num_replicas) * self.num_replicas - self.start) // self.num_replicas


def use_resumable_sampler(loader, args) -> Optional[ResumableSampler]:
    """Give timm's training loader a ResumableSampler (create_loader takes no sampler: its batch
    sampler's is replaced). None for an iterable data set (webdataset shards), which orders itself."""
    loader = getattr(loader, 'loader', loader)  # (timm's PrefetchLoader)
    if isinstance(loader.dataset, torch.utils.data.IterableDataset) or loader.batch_sampler is None:
        return None
    sampler = ResumableSampler(len(loader.dataset), args.world_size, args.rank, args.seed)
    loader.batch_sampler.sampler = sampler
    return sampler
