"""``python -m training COMMAND ...`` = ``prep COMMAND ...``, so ``torchrun -m training train ...`` works."""

from training.cli import rank_main

if __name__ == "__main__":
    rank_main()
