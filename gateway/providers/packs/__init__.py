"""Provider wire formats ("packs"): how to talk to each kind of upstream."""
