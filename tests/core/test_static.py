"""Static review: each rule fires on what it should, with the right line, and stays quiet on normal code."""

from __future__ import annotations

import pytest

from core.review.static import analyse

CASES = [
    # process spawning
    ("import subprocess\nsubprocess.run(['ls'])", "process", 1, "imports subprocess"),
    ("import os\nos.system('ls')", "process", 2, "os.system"),
    ("from os import popen as p\np('ls')", "process", 1, "os.popen"),
    ("import os\nos.execv('/bin/sh', ['sh'])", "process", 2, "os.execv"),
    ("import os\nos.spawnl(0, '/bin/sh')", "process", 2, "os.spawnl"),
    ("import os\npid = os.fork()", "process", 2, "os.fork"),
    ("import pty", "process", 1, "pty"),
    ("from multiprocessing import Pool", "process", 1, "multiprocessing"),
    # network
    ("import socket", "network", 1, "socket"),
    ("import urllib.request as u\nu.urlopen('http://x')", "network", 1, "urllib.request"),
    ("from http.client import HTTPConnection", "network", 1, "http.client"),
    ("import requests", "network", 1, "requests"),
    ("import smtplib", "network", 1, "smtplib"),
    ("import ftplib", "network", 1, "ftplib"),
    # filesystem writes outside the working directory
    ("open('/etc/passwd', 'w').write('x')", "fs-write", 1, "/etc/passwd"),
    ("f = open('../../escape.txt', mode='a')", "fs-write", 1, "escape.txt"),
    ("with open('/tmp/x', 'x') as f:\n    pass", "fs-write", 1, "/tmp/x"),
    ("import os\nos.remove('/var/lib/data')", "fs-write", 2, "os.remove"),
    ("import shutil\nshutil.rmtree('/')", "fs-write", 2, "shutil.rmtree"),
    ("from pathlib import Path\nPath('/etc/hosts').write_text('x')", "fs-write", 2, "write_text"),
    ("from pathlib import Path\n(Path('/home') / 'u').unlink()", "fs-write", 2, "unlink"),
    (
        "from pathlib import Path\nPath.home().joinpath('.bashrc').write_text('x')",
        "fs-write",
        2,
        "write_text",
    ),
    # native code
    ("import ctypes", "ctypes", 1, "ctypes"),
    ("from cffi import FFI", "ctypes", 1, "cffi"),
    # dynamic code
    ("eval('1 + 1')", "eval", 1, "eval"),
    ("exec('x = 1')", "eval", 1, "exec"),
    ("code = compile('1', 'f', 'eval')", "eval", 1, "compile"),
    ("os = __import__('os')", "eval", 1, "__import__"),
    ("import importlib\nimportlib.import_module('os')", "eval", 1, "importlib"),
    # dunder tricks
    ("().__class__.__bases__[0].__subclasses__()", "dunder", 1, "__subclasses__"),
    ("def f(): pass\ng = f.__globals__", "dunder", 2, "__globals__"),
    ("b = __builtins__", "dunder", 1, "__builtins__"),
    ("c = (lambda: 0).__code__", "dunder", 1, "__code__"),
    ("m = int.__mro__", "dunder", 1, "__mro__"),
    ("x = getattr(object, '__subclasses__')()", "dunder", 1, "__subclasses__"),
    ("x = getattr(f, '__dict__')", "dunder", 1, "getattr"),
    # environment
    ("import os\nkey = os.environ['OPENAI_API_KEY']", "env", 2, "os.environ"),
    ("import os\nkey = os.getenv('OPENAI_API_KEY')", "env", 2, "os.getenv"),
    ("from os import environ\nprint(environ)", "env", 1, "os.environ"),
    ("print(open('/proc/1/environ').read())", "env", 1, "environment"),
]


@pytest.mark.parametrize(("code", "rule", "line", "detail"), CASES)
def test_each_rule_fires_with_its_line(code: str, rule: str, line: int, detail: str):
    findings = analyse(code)
    assert any(f.rule == rule and f.line == line and detail in f.message for f in findings), findings


@pytest.mark.parametrize(
    "code",
    [
        "import math\nresult = math.sqrt(2)",
        "import numpy as np\nimport matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.savefig('plot.png')",
        "with open('out.csv', 'w') as f:\n    f.write('a,b')\nresult = open('out.csv').read()",
        "from pathlib import Path\nPath('notes.txt').write_text('hi')",
        "import re\nresult = re.compile(r'\\d+').findall('a1b22')",
        "class A:\n    def name(self):\n        return self.__class__.__name__\nresult = A().name()",
        "import os\nresult = os.listdir('.')",
        "data = {'__main__': 1}\nprint(open('/etc/hostname').read())",
    ],
)
def test_ordinary_code_has_no_findings(code: str):
    assert analyse(code) == ()


def test_a_syntax_error_is_one_finding_with_its_line():
    (finding,) = analyse("x = 1\nif x\n    print(x)")
    assert finding.rule == "syntax" and finding.line == 2 and "not valid Python" in finding.message


def test_findings_are_sorted_deduplicated_and_capped():
    code = "import os\n" + "os.system('a')\n" * 3 + "import socket\n" + "eval('1')\n" * 30
    findings = analyse(code)
    assert [f.line for f in findings] == sorted(f.line for f in findings)
    assert len(set(findings)) == len(findings) <= 20
    assert {f.rule for f in findings} >= {"process", "network", "eval"}


def test_messages_read_as_sentences_for_a_chat_user():
    (finding,) = analyse("import socket")
    assert finding.message == "uses the network (imports socket)"
