"""A sample drive for demos (`--sample`): ordinary folders, text and
generated binaries, photos, two large generated files, nested folders and
awkward names (spaces, é/ü/日本, '#', '%').  Large files use generated
content, so the whole drive costs a few hundred KiB of memory.
"""

MiB = 1 << 20

NOTES = """Notes
=====

* Mount OneDrive with onedrivefs.
* Files are listed through Microsoft Graph.
* This file lives in the fake Graph server's sample drive.
"""


def sample_tree():
    t = []

    def f(path, content, mtime="2024-03-01T09:30:00Z"):
        t.append({"path": path, "content": content, "mtime": mtime})

    def d(path):
        t.append({"path": path, "folder": True})

    f("Documents/notes.txt", NOTES, "2024-01-02T03:04:05Z")
    f("Documents/Report 2024.docx", {"size": 48213, "seed": 11})
    f("Documents/Budget.pdf", {"size": 131072 + 517, "seed": 12})
    f("Documents/Résumé.pdf", {"size": 73001, "seed": 13})
    f("Documents/Über uns.txt", "Wir sind ein kleines Team.\n")
    f("Documents/日本語のメモ.txt", "こんにちは、世界。\n")
    f("Documents/C# notes.txt", "C# is not C.\n")
    f("Documents/100% done.txt", "Finished.\n")
    f("Documents/Projects/onedrivefs/README.md", "# onedrivefs\n\nA FUSE filesystem for OneDrive.\n")
    f("Documents/Projects/onedrivefs/src/main.c", "int main(void) { return 0; }\n")
    f("Documents/Projects/onedrivefs/docs/design notes.txt", "Cache metadata, stream content.\n")
    for i in range(36):
        size = 200 * 1024 + (i * 7919) % (300 * 1024)
        f("Photos/IMG_%04d.jpg" % (1001 + i), {"size": size, "seed": 100 + i},
          "2023-%02d-%02dT12:00:00Z" % (1 + i % 12, 1 + i % 28))
    f("Photos/Holidays 2023/Beach.jpg", {"size": 412345, "seed": 201})
    f("Photos/Holidays 2023/Mountains.jpg", {"size": 356789, "seed": 202})
    f("Music/Artist/Album/01 First Song.mp3", {"size": 3 * MiB + 123, "seed": 301})
    f("Music/Artist/Album/02 Second Song.mp3", {"size": 4 * MiB + 456, "seed": 302})
    f("Music/playlist.m3u", "Artist/Album/01 First Song.mp3\nArtist/Album/02 Second Song.mp3\n")
    f("Large files/disk-image-64M.bin", {"size": 64 * MiB, "seed": 401})
    f("Large files/video-300M.mp4", {"size": 300 * MiB, "seed": 402})
    f("empty.txt", "")
    d("Empty folder")
    f("Deep/a/b/c/d/e/leaf.txt", "deep\n")
    return t
