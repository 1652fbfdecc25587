# Threat: bytes that are not valid UTF-8 and NUL bytes on stdout and stderr, meant to crash the
# host's decoder or the chat renderer, and a `result` whose repr holds odd characters.
import sys

sys.stdout.buffer.write(b"before \xff\xfe\xc3\x28 bad \x00 nul \xed\xa0\x80 surrogate after\n")
sys.stderr.buffer.write(b"err \x80\x81 \x00 end\n")
sys.stdout.flush()
sys.stderr.flush()
result = b"\xff\x00" + "\udcff".encode("utf-8", "surrogatepass")
