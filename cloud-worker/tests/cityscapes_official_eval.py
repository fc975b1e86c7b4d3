"""The official Cityscapes pixel-level evaluation, for tests/eval.rs to compare against.

Runs cityscapesScripts' evalPixelLevelSemanticLabeling the way its main() does when called
without arguments: the ground truth is every gtFine/SPLIT/*/*_gtFine_labelIds.png below
$CITYSCAPES_DATASET, each prediction is found below $CITYSCAPES_RESULTS by the package's own
getPrediction ({city}_{seq}_{frame}*.png), and evaluateImgLists computes the scores. Prints the
package's result dictionary as JSON on standard output, NaN written as null.

The only settings changed from the package's defaults: the split (its main() hard-codes "val"),
no instance-level scores (they need *_instanceIds.png; the instance-weighted nIoU is not compared),
no JSON file and no printing (its tables go nowhere, its errors still go to standard output and
exit non-zero).

Usage: CITYSCAPES_DATASET=... CITYSCAPES_RESULTS=... python cityscapes_official_eval.py SPLIT
"""

import contextlib
import glob
import importlib.metadata
import json
import math
import os
import sys

from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official


def without_nan(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nan(v) for v in value]
    return value


def main():
    split = sys.argv[1]
    args = official.args
    args.groundTruthSearch = os.path.join(
        args.cityscapesPath, "gtFine", split, "*", "*_gtFine_labelIds.png"
    )
    args.evalInstLevelScore = False
    args.JSONOutput = False
    args.quiet = True
    ground_truth = sorted(glob.glob(args.groundTruthSearch))
    if not ground_truth:
        sys.exit("no ground truth: nothing matches " + args.groundTruthSearch)
    predictions = [official.getPrediction(args, gt) for gt in ground_truth]
    with contextlib.redirect_stdout(sys.stderr):
        result = official.evaluateImgLists(predictions, ground_truth, args)
    json.dump(
        {
            "version": importlib.metadata.version("cityscapesscripts"),
            "cython": bool(official.CSUPPORT),
            "images": len(ground_truth),
            "result": without_nan(result),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
