"""The process's surroundings: environment, files on disk, content hashes, embedded assets, child processes, the registry helper."""
