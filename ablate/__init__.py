"""ablate: controlled multi-seed ablation studies of MLPs on MNIST."""
