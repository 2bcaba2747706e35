"""The process's surroundings: environment and caches, files on disk, content hashes, embedded assets, child processes."""
