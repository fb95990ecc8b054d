"""`python -m benchmarks` (`just bench`): see `python -m benchmarks --help`."""

from benchmarks._cli import main

if __name__ == '__main__':
    main()
