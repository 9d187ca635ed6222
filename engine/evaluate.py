"""The evaluation loop (top-1 / top-5 / loss), distributed-aware."""
import logging

import torch
from timm import utils

_logger = logging.getLogger(__name__)


def evaluate(model, loader, loss_fn, args, device, amp_autocast, log_suffix: str = '') -> dict:
    losses, top1, top5 = utils.AverageMeter(), utils.AverageMeter(), utils.AverageMeter()
    model.eval()
    with torch.no_grad():
        for input, target in loader:
            if not args.prefetcher:
                input, target = input.to(device), target.to(device)
            if args.channels_last:
                input = input.contiguous(memory_format=torch.channels_last)
            with amp_autocast():
                output = model(input)
                loss = loss_fn(output, target)
            acc1, acc5 = utils.accuracy(output, target, topk=(1, min(5, output.shape[-1])))
            if args.distributed:
                loss = utils.reduce_tensor(loss.data, args.world_size)
                acc1 = utils.reduce_tensor(acc1, args.world_size)
                acc5 = utils.reduce_tensor(acc5, args.world_size)
            losses.update(loss.item(), input.size(0))
            top1.update(acc1.item(), output.size(0))
            top5.update(acc5.item(), output.size(0))
    metrics = {'loss': losses.avg, 'top1': top1.avg, 'top5': top5.avg}
    if utils.is_primary(args):
        _logger.info(f'Test{log_suffix}: Loss {losses.avg:>7.4f}  Acc@1 {top1.avg:>7.3f}  Acc@5 {top5.avg:>7.3f}')
    return metrics
