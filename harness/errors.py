"""The one exception type that means "the user's input is wrong".

The CLI prints it as one line per problem (file, field, what was expected) and exits 2, with no
traceback. Anything else that escapes is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: a config, a data file, a model spec or a CLI argument."""

    def __init__(self, *lines: str):
        self.lines = [line for line in lines if line]
        super().__init__("\n".join(self.lines))
