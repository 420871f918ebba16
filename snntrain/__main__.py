"""``python -m snntrain`` is the ``snntrain`` command."""
from .cli import main

main()
