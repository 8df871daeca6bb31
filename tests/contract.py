"""RobustBench's data contract, written down independently of the library (robustbench 78fcc9e)."""

# The value type of every key of a RobustBench model_info file.
TYPES = {
    "link": str,
    "name": str,
    "authors": str,
    "additional_data": bool,
    "number_forward_passes": int,
    "dataset": str,
    "venue": str,
    "architecture": str,
    "eps": str,
    "clean_acc": str,
    "reported": str,
    "autoattack_acc": str,
    "unreliable": bool,
    "footnote": str,
    "external": str,
    "corruptions_acc": str,
}
# Keys present in every one of the 143 real CIFAR-10 files.
ALWAYS = {
    "link", "name", "authors", "additional_data", "number_forward_passes", "dataset", "venue",
    "architecture", "eps", "clean_acc", "reported",
}  # fmt: skip
