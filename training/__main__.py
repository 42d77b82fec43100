"""``python -m training COMMAND ...`` = ``prep COMMAND ...``, so ``torchrun -m training train ...`` works."""

if __name__ == "__main__":
    from acquisition._entry import install_stop_handlers

    install_stop_handlers()  # before the toolkit loads: a stop meanwhile is one line and 128 + N, as with prep
    from training.cli import rank_main

    rank_main()
