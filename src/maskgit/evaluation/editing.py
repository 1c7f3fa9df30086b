"""Score editing with the judge classifier (paper section 4.3, at Fashion-MNIST scale).

Inpainting: mask the centre 50% x 50% of real test images, inpaint, and count how often the
classifier still gives the original label (beside its accuracy on the unedited images); report the
Frechet distance of inpainted vs real features. Class-conditional editing: regenerate a box covering
the whole garment with another class and count how often the classifier's verdict becomes the target.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..atomic import write_json_atomic
from ..editing import EDIT_START_ITER
from .classifier import predict
from .frechet import few_images_warnings, frechet_or_none


def centre_mask(images: torch.Tensor, fraction: float = 0.5) -> torch.Tensor:
    """(B, 1, H, W) bool mask of the centre `fraction` x `fraction` of the image."""
    b, _, h, w = images.shape
    mh, mw = round(h * fraction), round(w * fraction)
    top, left = (h - mh) // 2, (w - mw) // 2
    mask = torch.zeros(b, 1, h, w, dtype=torch.bool)
    mask[..., top:top + mh, left:left + mw] = True
    return mask


def _batched(fn, *tensors, batch_size: int, desc: str, progress: bool = True):
    chunks = list(zip(*(t.split(batch_size) for t in tensors)))
    return torch.cat([fn(*chunk) for chunk in tqdm(chunks, desc=desc, disable=not progress)])


def evaluate_editing(model: str, classifier: str, out: str | Path, *, data: str = "fashion-mnist",
                     data_root: str | None = None, num_inpaint: int = 500, num_edit: int = 200, seed: int = 0,
                     batch_size: int = 100, device: str = "cpu", overwrite: bool = False, resize: bool = False,
                     progress: bool = True, **sampling) -> dict:
    """Run both editing benchmarks on test images of `data` (which the model must fit: other sizes need `resize`);
    write JSON and a PNG of examples. At most half the test split is inpainted; the rest is the real reference."""
    from ..images import save_grid
    from ..outputs import result_paths
    from ..pipeline import MaskGIT
    from .report import check_data, load_judge, model_data

    out, _ = result_paths(out, overwrite, inputs=[model])
    if sampling.get("steps") is not None and sampling["steps"] <= EDIT_START_ITER:
        raise ValueError(f"class edits start decoding at iteration {EDIT_START_ITER}, so --steps must exceed it, "
                         f"got {sampling['steps']}")
    if num_inpaint < 1 or num_edit < 1:
        raise ValueError(f"--num-inpaint and --num-edit must be >= 1, got {num_inpaint} and {num_edit}")
    start = time.time()
    pipe = MaskGIT.from_pretrained(model, device=device)
    judge = load_judge(classifier, pipe, data, model)
    test_x, test_y = model_data(data, pipe, "test", data_root=data_root, resize=resize)
    check_data(test_x, test_y, pipe, data)
    num_inpaint, num_edit = min(num_inpaint, max(1, len(test_x) // 2)), min(num_edit, len(test_x))
    g = torch.Generator(pipe.device).manual_seed(seed)
    order = torch.randperm(len(test_x), generator=torch.Generator().manual_seed(seed))

    x, y = test_x[order[:num_inpaint]], test_y[order[:num_inpaint]]
    mask = centre_mask(x)
    inpainted = _batched(lambda im, m: pipe.inpaint(im.to(pipe.device), m.to(pipe.device), generator=g,
                                                    **sampling).cpu(), x, mask, batch_size=batch_size, desc="inpaint",
                       progress=progress)
    pred_orig, feat_orig = predict(judge, x)
    pred_inp, feat_inp = predict(judge, inpainted)
    _, feat_real = predict(judge, test_x[order[num_inpaint:num_inpaint + 5000]])

    ex, ey = test_x[order[:num_edit]], test_y[order[:num_edit]]
    num_classes = pipe.transformer.config.num_classes
    offset = torch.randint(1, num_classes, (num_edit,), generator=torch.Generator().manual_seed(seed + 1))
    targets = (ey + offset) % num_classes  # a class other than the original
    h, w = ex.shape[-2:]
    edited = _batched(lambda im, t: pipe.edit(im.to(pipe.device), (0, 0, w, h), t.to(pipe.device), generator=g,
                                              **sampling).cpu(), ex, targets, batch_size=batch_size, desc="edit",
                    progress=progress)
    pred_edit, _ = predict(judge, edited)
    result = {
        "inpainting": {
            "num_images": num_inpaint, "mask": "centre 50% x 50%",
            "label_kept": float((pred_inp == y).float().mean()),
            "label_kept_unedited": float((pred_orig == y).float().mean()),
            "frechet_inpainted_vs_real": frechet_or_none(feat_inp.numpy(), feat_real.numpy()),
            "frechet_unedited_vs_real": frechet_or_none(feat_orig.numpy(), feat_real.numpy()),
        },
        "class_editing": {
            "num_trials": num_edit, "box": "whole image",
            "target_reached": float((pred_edit == targets).float().mean()),
            "still_original": float((pred_edit == ey).float().mean()),
        },
        "model": str(model), "classifier": str(classifier), "data": data, "data_root": data_root, "resize": resize,
        "seed": seed, "batch_size": batch_size, "device": str(device), "sampling": sampling,
        "seconds": round(time.time() - start, 1),
        "warnings": few_images_warnings({"inpainted": num_inpaint, "real reference": len(feat_real)}),
    }
    k = min(8, num_inpaint, num_edit)  # examples per row
    rows = torch.stack([x[:k], x[:k].masked_fill(mask[:k], 0.5), inpainted[:k], ex[:k], edited[:k]])
    save_grid(rows.flatten(0, 1), out.with_suffix(".png"), nrow=k)
    write_json_atomic(out, result)
    return result
