"""Paper C (Gama & Grassi 2025, uniform loss vs specialized optimizers): its study and report."""
