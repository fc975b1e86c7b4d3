import sys
from pathlib import Path

# The package lives in engines/; the tests run from anywhere.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
