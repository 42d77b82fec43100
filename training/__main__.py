"""``python -m training COMMAND ...`` = ``prep COMMAND ...``, so ``torchrun -m training train ...`` works."""

from acquisition.prep import main

if __name__ == "__main__":
    main(prog_name="prep")
