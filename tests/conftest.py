import os
import sys

# The conformance helpers import each other by module name.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "conformance"))
