"""A test helper: a seekable stream that counts the batches it yields (resume tests)."""


class Counting:
    """A seekable stream over ``batches`` (anything with ``iter_from``) that counts the batches it yields."""

    seekable = True

    def __init__(self, batches):
        self.b, self.read = batches, 0

    def __len__(self):
        return len(self.b)

    def __getattr__(self, name):  # batch_size, num_examples: as the wrapped stream declares them
        return getattr(self.b, name)

    def __iter__(self):
        return self.iter_from(0)

    def iter_from(self, k):
        for xy in self.b.iter_from(k):
            self.read += 1
            yield xy
