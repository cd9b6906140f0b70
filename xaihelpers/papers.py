"""Numbers the papers report, for the "paper" columns beside the book's own results.

Each table is copied from the cited paper (see the book's references) so that a
chapter can set its measurements next to them; nothing here is computed.
"""

from __future__ import annotations

# Du et al. (2018), the poster's whole table: weakly supervised localisation error (%) on
# ImageNet validation images with VGG-19 ("Error (%)" row), each method at the threshold
# alpha of the "α" row. "Real" is a seventh method the poster names only so (no alpha);
# "Ours" is GFI. The lowest error in it is Real's, not GFI's.
GFI_LOCALISATION_ERROR = {"Grad": 41.7, "GuidedBP": 42.0, "LRP": 57.8, "CAM": 48.1, "Mask": 43.2, "Real": 36.9,
                          "GFI": 38.2}
GFI_POSTER_ALPHA = {"Grad": 5.0, "GuidedBP": 4.5, "LRP": 1.0, "CAM": 1.0, "Mask": 0.5, "Real": None, "GFI": 1.1}

# Han et al. (2024), Table 1 / Table 3: ImageNet validation top-1 and top-5 accuracy of the
# original model and of APOP (zeros input), and Table 3's other inputs and "APOP & relu".
# (model, input) -> {"top1": {...}, "top5": {...}} with keys "original", "apop", "apop_relu".
SRD_APOP = {
    ("ResNet18", "zeros"): {"top1": {"original": .6707, "apop": .4871, "apop_relu": .6404},
                            "top5": {"original": .8769, "apop": .7340, "apop_relu": .8595}},
    ("ResNet18", "ones"): {"top1": {"apop": .4813, "apop_relu": .6408}, "top5": {"apop": .6750, "apop_relu": .8593}},
    ("ResNet18", "normal"): {"top1": {"apop": .2518, "apop_relu": .6375}, "top5": {"apop": .4594, "apop_relu": .8598}},
    ("VGG16", "zeros"): {"top1": {"original": .6980, "apop": .5754, "apop_relu": .6847},
                         "top5": {"original": .8940, "apop": .8094, "apop_relu": .8875}},
    ("VGG16", "ones"): {"top1": {"apop": .5268, "apop_relu": .6837}, "top5": {"apop": .7665, "apop_relu": .8870}},
    ("VGG16", "normal"): {"top1": {"apop": .2903, "apop_relu": .6854}, "top5": {"apop": .4979, "apop_relu": .8871}},
    ("ResNet50", "zeros"): {"top1": {"original": .7446, "apop": .5690, "apop_relu": .7328},
                            "top5": {"original": .9183, "apop": .7943, "apop_relu": .9148}},
    ("ResNet50", "ones"): {"top1": {"apop": .5198, "apop_relu": .7334}, "top5": {"apop": .7527, "apop_relu": .9141}},
    ("ResNet50", "normal"): {"top1": {"apop": .3035, "apop_relu": .7366}, "top5": {"apop": .5066, "apop_relu": .9168}},
}

# Han et al. (2024), Table 2 on ImageNet-S50 (752 images): pointing game, attribution
# localisation, sparseness, fidelity, stability; the VGG-16 half and the ResNet-50 half.
# Keys are the book's method names; "layercam" is the table's LayerCAM-low, and
# "layercam_high" its LayerCAM-high (28 x 28).
SRD_TABLE2_VGG16 = {
    "saliency": (.793, .394, .494, .093, .181),
    "guided_backprop": (.892, .480, .711, .022, .100),
    "input_x_gradient": (.781, .387, .630, -.013, .181),
    "integrated_gradients": (.869, .416, .618, -.017, .175),
    "lrp_epsilon_plus": (.855, .456, .535, .098, .182),
    "smoothgrad": (.845, .363, .536, -.005, .190),
    "fullgrad": (.796, .362, .334, .107, .203),
    "gradcam": (.945, .431, .466, .175, .583),
    "gradcam_pp": (.932, .429, .351, .176, .570),
    "scorecam": (.937, .582, .342, .167, .622),
    "ablationcam": (.928, .481, .493, .189, .622),
    "xgradcam": (.896, .406, .446, .181, .576),
    "layercam": (.869, .425, .446, .175, .450),
    "layercam_high": (.865, .435, .401, .199, .423),
    "srd_low": (.945, .424, .437, .179, .595),
    "srd_high": (.948, .566, .629, .206, .406),
    "srd_input": (.925, .561, .788, .069, .099),
}
SRD_TABLE2_RESNET50 = {
    "saliency": (.654, .370, .488, .063, .172),
    "guided_backprop": (.871, .498, .741, .022, .112),
    "input_x_gradient": (.639, .361, .626, -.018, .178),
    "integrated_gradients": (.759, .382, .614, -.016, .171),
    "lrp_epsilon_plus": (.543, .332, .572, .012, .105),
    "smoothgrad": (.888, .396, .556, -.002, .166),
    "fullgrad": (.938, .387, .262, .123, .689),
    "gradcam": (.946, .424, .411, .128, .757),
    "gradcam_pp": (.945, .414, .386, .129, .732),
    "scorecam": (.916, .381, .313, .123, .827),
    "ablationcam": (.934, .394, .329, .133, .814),
    "xgradcam": (.946, .424, .411, .126, .753),
    "layercam": (.934, .411, .379, .128, .734),
    "layercam_high": (.941, .423, .349, .135, .486),
    "srd_low": (.946, .544, .682, .130, .600),
    "srd_high": (.952, .579, .628, .142, .375),
    "srd_input": (.953, .576, .724, .082, .104),
}
SRD_TABLE2_COLUMNS = ("pointing_game", "attribution_localisation", "sparseness", "fidelity", "stability")

# Han et al. (2024), Table 4: fidelity of ResNet-50 on CIFAR-100 per activation function.
SRD_TABLE4_FIDELITY = {
    "guided_backprop": (0.064, 0.025, 0.001, 0.015, 0.030, 0.028),
    "input_x_gradient": (-0.010, -0.007, -0.005, -0.024, -0.004, -0.006),
    "integrated_gradients": (0.006, 0.015, -0.001, -0.008, -0.007, 0.014),
    "smoothgrad": (-0.012, 0.026, -0.014, -0.023, -0.009, -0.017),
    "fullgrad": (0.038, 0.209, 0.029, 0.171, 0.095, 0.107),
    "gradcam": (0.005, -0.014, -0.004, 0.042, -0.001, 0.002),
    "scorecam": (0.013, 0.052, 0.031, 0.061, 0.010, 0.017),
    "ablationcam": (0.020, 0.024, 0.003, 0.015, 0.033, 0.012),
    "xgradcam": (0.007, 0.011, 0.018, 0.028, 0.012, 0.017),
    "layercam": (0.021, 0.042, 0.012, 0.018, 0.007, -0.001),
    "srd": (0.078, 0.214, 0.065, 0.194, 0.128, 0.115),  # resolution not stated
}
SRD_TABLE4_ACTIVATIONS = ("relu", "elu", "leaky_relu", "silu", "gelu", "tanh")
# ... and the test accuracy of each of those six ResNet-50s (Table 4's caption)
SRD_TABLE4_ACCURACY = (0.780, 0.746, 0.785, 0.756, 0.767, 0.685)

# Each paper's headline claim that chapter 6 can test on the shared benchmark:
# (paper, claim in words, the book's method name, metric of xaihelpers.compare).
# A claim of "best" means rank 1 among the methods compared.
# The SRD claims are those its Table 2 supports on both networks (best fidelity for SRD-high,
# best stability for SRD-input) or on one, named (pointing game: SRD-input on ResNet-50,
# SRD-high on VGG-16; attribution localisation: SRD-high on ResNet-50, Score-CAM on VGG-16).
COMPARISON_CLAIMS = (
    ("Du et al. 2018", "lower localisation error than Grad, GuidedBP, LRP, CAM and Mask (poster table)", "GFI",
     "loc_error"),
    ("Han et al. 2024", "best pointing game (Table 2, ResNet-50; SRD-high's on VGG-16)", "SRD-input", "pointing_game"),
    ("Han et al. 2024", "best attribution localisation (Table 2, ResNet-50; Score-CAM's on VGG-16)", "SRD-high",
     "attribution_localisation"),
    ("Han et al. 2024", "best fidelity (Table 2, both networks)", "SRD-high", "fidelity"),
    ("Han et al. 2024", "most stable (Table 2, both networks)", "SRD-input", "stability"),
    ("Chanchal et al. 2025", "explanations that keep the label on new backgrounds", "causal (ConvAD)", "planted_survival"),
    ("Suhail et al. 2025", "the smallest sufficient explanations", "Activation Matching", "size"),
    ("Suhail et al. 2025", "explanations that keep the label whatever fills the rest", "Activation Matching", "planted_survival"),
)
