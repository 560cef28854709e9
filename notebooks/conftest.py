"""nbval settings for `make test`.

nbval waits at most 5 s (hard-coded, `IPyNbCell.output_timeout`) between the output messages of a cell that
has finished, and fails the cell when the kernel is slower than that to flush a long training cell's output
(seen intermittently in notebook 06; nbval issues #136 and #231 ask for the value to be configurable).
A minute is generous for a flush and still fails a kernel that really hangs.
"""

import nbval.plugin

OUTPUT_TIMEOUT_S = 60

_init = nbval.plugin.IPyNbCell.__init__


def _init_with_output_timeout(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    self.output_timeout = OUTPUT_TIMEOUT_S


nbval.plugin.IPyNbCell.__init__ = _init_with_output_timeout

# The student copies (notebooks/clean/) are the originals without outputs: nbval runs the originals only.
collect_ignore = ["clean"]
