"""The README's commands and snippets work as written (the doc-check).

- Every ```python block of README.md and docs/*.md runs: one subprocess of the venv's python, each
  block in a fresh namespace, in an empty temporary folder (blocks must be self-contained).
- Every command of their ```bash blocks that starts a script of this repository
  (`.venv/bin/python X.py ...`, `./distributed_train.sh N ...`, `bash tools/slurm_train.sh ...`,
  `bash segmentation/tools/dist_train.sh CONFIG N ...`, ...) names a script that exists, and its
  arguments are parsed by that script's own argument parser: every option spelled exactly as the
  parser has it (no abbreviation), every value of the type and choices it accepts. The parser is
  stopped right after parsing, so nothing runs. Every .py / .sh path a command names exists, and no
  command runs a bare `python` (it fails outside an activated venv).
- The cheap commands of README.md run for real, in order, in a copy of the repository root
  (symbolic links, its own output/): those of CHEAP_SCRIPTS and the `.venv/bin/python -c` one-liners,
  whose input files (data, --checkpoint) are there and which download nothing. The main job's
  train.py command is parsed but not run (it trains for ~12 minutes): a freshly initialised model of
  its model, class count and size, saved as a train.py checkpoint where that command writes its
  own, stands in for its output. In the Quick start every command runs except those of
  PARSE_ONLY_SCRIPTS and those that read what one of these writes.
- Relative links of README.md point to files that exist.
"""
import json
import os
import re
import shlex
import subprocess
import sys

import pytest
import timm
import torch

import models  # noqa: F401  (registers the models with timm)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, 'README.md')
DOCS = [README] + sorted(os.path.join(ROOT, 'docs', f) for f in os.listdir(os.path.join(ROOT, 'docs'))
                         if f.endswith('.md'))
PYTHON = os.path.join(ROOT, '.venv', 'bin', 'python')
if not os.path.exists(PYTHON):  # (a checkout tested with another environment)
    PYTHON = sys.executable
VENV_PYTHON = '.venv/bin/python'

# Scripts the doc-check runs for real when their inputs exist (each takes seconds on a CPU).
CHEAP_SCRIPTS = {'validate.py', 'inference.py', 'tools/clean_checkpoint.py', 'tools/avg_checkpoints.py',
                 'tools/onnx_validate.py'}
# Quick-start scripts that are only parsed: training, the ONNX export (one to three minutes on 2
# cores, tests/test_onnx.py exports), the test-suite.
PARSE_ONLY_SCRIPTS = {'train.py', 'onnx_export.py', 'benchmark.py'}
# Parsed options that name files a command reads.
INPUT_OPTIONS = ('data', 'data_dir', 'checkpoint', 'initial_checkpoint', 'resume', 'pretrained_path', 'input', 'onnx')
QUICK_START = 'Quick start'
RUN_TIMEOUT = 600


# ----------------------------------------------------------------------------------------------
# Reading the documents

def _read(path: str) -> str:
    with open(path, encoding='utf-8') as f:
        return f.read()


def fenced_blocks(path: str, lang: str):
    """[(line number, section heading, code)] of the ```lang blocks of a Markdown file."""
    blocks, section, inside, start, lines = [], '', None, 0, []
    for n, line in enumerate(_read(path).splitlines(), 1):
        if inside is None:
            if line.startswith('## '):
                section = line[3:].strip()
            m = re.match(r'^```(\w*)\s*$', line)
            if m:
                inside, start, lines = m.group(1), n, []
        elif line.startswith('```'):
            if inside == lang:
                blocks.append((start, section, '\n'.join(lines) + '\n'))
            inside = None
        else:
            lines.append(line)
    return blocks


def _split_commands(line: str):
    """The simple commands of one shell line (split at ;, &&, ||, |; comments dropped), as tokens."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, current = [], []
    for token in lexer:
        if token in (';', '&&', '||', '|', '&'):
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
    if current:
        commands.append(current)
    return commands


class Command:
    """One simple command of a ```bash block, and the repository script it starts (if any)."""

    def __init__(self, path, line, section, tokens):
        self.where = f'{os.path.relpath(path, ROOT)}:{line}'
        self.doc, self.section, self.tokens = path, section, tokens
        self.script, self.argv, self.inline, self.module = None, None, False, None
        self.problems, self.ns = [], None
        self._resolve()

    def __str__(self):
        return f'{self.where}: {shlex.join(self.tokens)}'

    def _resolve(self):
        t = list(self.tokens)
        while t and re.match(r'^[A-Za-z_][A-Za-z0-9_]*=', t[0]):  # VAR=value prefixes
            t.pop(0)
        if t and t[0] == 'timeout':  # timeout [options] DURATION command
            t.pop(0)
            while t and not re.match(r'^\d+(\.\d+)?[smhd]?$', t[0]):
                t.pop(0)
            t = t[1:]
        if t and t[0] == 'nice':
            t = t[3:] if len(t) > 2 and t[1] == '-n' else t[1:]
        if t and t[0] == 'sbatch':
            t.pop(0)
            while t and t[0].startswith('-'):
                t.pop(0)
        if t and t[0] == 'bash':
            t.pop(0)
        if not t:
            return
        exe = t[0][2:] if t[0].startswith('./') else t[0]
        if exe in ('python', 'python3') or re.match(r'^python3(\.\d+)?$', exe):
            self.problems.append(f'runs a bare `{exe}`: write {VENV_PYTHON} (it needs no activated venv)')
        elif exe == VENV_PYTHON:
            if len(t) > 1 and t[1] == '-c':
                self.inline = True
            elif len(t) > 1 and t[1] == '-m':
                self.module = t[2] if len(t) > 2 else ''
            elif len(t) > 1:
                self.script, self.argv = t[1], t[2:]
        elif exe == 'distributed_train.sh':
            self.script, self.argv = 'train.py', t[2:]
        elif exe == 'distributed_validate.sh':
            self.script, self.argv = 'validate.py', t[2:]
        elif exe == 'tools/launch.sh':
            self.script, self.argv = (t[1] if len(t) > 1 else ''), t[3:]
        elif exe == 'tools/slurm_train.sh':
            self.script, self.argv = 'train.py', t[1:]
        elif exe.endswith('/tools/dist_train.sh'):  # CONFIG NUM_PROCS [args]: tools/train.py CONFIG [args]
            self.script = exe[:-len('dist_train.sh')] + 'train.py'
            self.argv = t[1:2] + t[3:] + ['--launcher', 'pytorch']
        elif exe.endswith('/tools/dist_test.sh'):  # CONFIG CHECKPOINT NUM_PROCS [args]
            self.script = exe[:-len('dist_test.sh')] + 'test.py'
            self.argv = t[1:3] + t[4:] + ['--launcher', 'pytorch']
        if self.script is not None:
            self.script = self.script[2:] if self.script.startswith('./') else self.script
        for token in self.tokens:  # every script or config path it names exists
            path = token[2:] if token.startswith('./') else token
            if re.match(r'^[\w.-]+(/[\w.-]+)*\.(py|sh)$', path) and not os.path.exists(os.path.join(ROOT, path)):
                self.problems.append(f'names {token}, which does not exist')


def shell_commands(paths):
    commands = []
    for path in paths:
        for line, section, code in fenced_blocks(path, 'bash'):
            lines = code.replace('\\\n', ' ').splitlines()
            for offset, text in enumerate(lines):
                for tokens in _split_commands(text):
                    commands.append(Command(path, line + 1 + offset, section, tokens))
    return commands


# ----------------------------------------------------------------------------------------------
# Parsing the scripts' arguments with their own parsers, in one process

PARSE_DRIVER = r'''
import argparse, contextlib, io, json, re, runpy, sys


class Parsed(BaseException):
    """Raised right after a script's parser has parsed its arguments: nothing else runs."""


captured = {}
_parse_args = argparse.ArgumentParser.parse_args


def parse_args(self, args=None, namespace=None):
    captured['ns'] = _parse_args(self, args, namespace)
    captured['parser'] = self
    raise Parsed()


argparse.ArgumentParser.parse_args = parse_args
results = []
for script, argv in json.load(sys.stdin):
    captured.clear()
    sys.argv = [script] + argv
    err, out = io.StringIO(), io.StringIO()
    result = {}
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            runpy.run_path(script, run_name='__main__')
        result['error'] = 'the script ended without parsing arguments'
    except Parsed:
        parser, ns = captured['parser'], captured['ns']
        inexact = [a.split('=')[0] for a in argv if re.match(r'^--?[A-Za-z]', a)
                   and a.split('=')[0] not in parser._option_string_actions]
        if inexact:
            result['error'] = f'no option {inexact} (options are spelled in full)'
        result['ns'] = {k: v for k, v in vars(ns).items()
                        if isinstance(v, (str, int, float, bool, list, type(None)))}
    except SystemExit as e:
        result['error'] = f'exit code {e.code}: {(err.getvalue() + out.getvalue()).strip()[-2000:]}'
    except Exception as e:
        result['error'] = f'{type(e).__name__}: {e}'
    results.append(result)
sys.stdout.write('\nPARSED ' + json.dumps(results) + '\n')
'''


def _sandbox(path):
    """A folder that looks like the repository root: links to its entries, its own output/."""
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(ROOT):
        if name not in ('output', '.git', 'work_dir', 'work_dirs', 'data', '.pytest_cache', '.ruff_cache'):
            os.symlink(os.path.join(ROOT, name), os.path.join(path, name))
    return path


@pytest.fixture(scope='module')
def checked(tmp_path_factory):
    """(sandbox folder, the commands of README.md and docs/*.md, each with its parsed arguments)."""
    sandbox = _sandbox(str(tmp_path_factory.mktemp('repo')))
    commands = shell_commands(DOCS)
    scripts = [c for c in commands if c.script is not None and not c.problems]
    proc = subprocess.run(
        [PYTHON, '-c', PARSE_DRIVER], cwd=sandbox, capture_output=True, text=True, timeout=RUN_TIMEOUT,
        input=json.dumps([[c.script, c.argv] for c in scripts]))
    marker = [line for line in proc.stdout.splitlines() if line.startswith('PARSED ')]
    assert proc.returncode == 0 and marker, f'the parse driver failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    for command, result in zip(scripts, json.loads(marker[-1][len('PARSED '):])):
        command.ns = result.get('ns')
        if 'error' in result:
            command.problems.append(result['error'])
    return sandbox, commands


def test_commands_name_existing_scripts_and_options(checked):
    _, commands = checked
    scripts = [c for c in commands if c.script is not None]
    assert len(scripts) >= 15, 'the doc-check found too few script commands: is the extraction broken?'
    assert any(c.script == 'train.py' and c.doc == README for c in scripts)
    problems = [f'{c}\n    -> {"; ".join(c.problems)}' for c in commands if c.problems]
    assert not problems, 'commands that do not work as written:\n' + '\n'.join(problems)


# ----------------------------------------------------------------------------------------------
# Running the cheap README commands

def _stand_in_checkpoint(sandbox: str, command: Command):
    """What the main job's train.py command writes, as far as later commands read it: a
    checkpoint of its model (freshly initialised) in its run folder."""
    ns = command.ns
    folder = os.path.join(sandbox, ns['output'] or os.path.join('output', 'train'), ns['experiment'])
    os.makedirs(folder, exist_ok=True)
    num_classes = ns['num_classes'] or 10  # digits
    model = timm.create_model(ns['model'], num_classes=num_classes, img_size=ns['img_size'] or 224)
    state = {'epoch': ns['epochs'] - 1, 'arch': ns['model'], 'args': ns, 'state_dict': model.state_dict(),
             'version': 2}
    torch.save(state, os.path.join(folder, 'last.pth.tar'))
    os.link(os.path.join(folder, 'last.pth.tar'), os.path.join(folder, 'model_best.pth.tar'))


def _missing_inputs(sandbox: str, command: Command):
    values = [command.ns.get(k) for k in INPUT_OPTIONS]
    return [v for v in values if isinstance(v, str) and v and not os.path.exists(os.path.join(sandbox, v))]


def test_cheap_readme_commands_run(checked):
    sandbox, commands = checked
    readme = [c for c in commands if c.doc == README and not c.problems]
    ran, parse_only_tokens, failures = [], set(), []
    for c in readme:
        in_quick_start = c.section == QUICK_START
        if c.script in PARSE_ONLY_SCRIPTS:
            parse_only_tokens.update(c.tokens)
            if c.script == 'train.py' and c.ns.get('dataset') == 'digits' and c.ns.get('experiment'):
                _stand_in_checkpoint(sandbox, c)
            continue
        runnable = False
        if c.inline:
            runnable = True
        elif c.script in CHEAP_SCRIPTS:
            missing = _missing_inputs(sandbox, c)
            runnable = not missing and not c.ns.get('pretrained')  # (--pretrained downloads)
            if in_quick_start and missing and not set(missing) <= parse_only_tokens:
                failures.append(f'{c}\n    -> reads {missing}, which no earlier command makes')
        elif in_quick_start and c.module != 'pytest' and c.tokens[-1:] != ['setup.sh']:
            failures.append(f'{c}\n    -> a Quick start command the doc-check neither runs nor stands in for')
        if not runnable:
            continue
        proc = subprocess.run(shlex.join(c.tokens), shell=True, executable='/bin/bash', cwd=sandbox,
                              capture_output=True, text=True, timeout=RUN_TIMEOUT)
        ran.append(c)
        if proc.returncode != 0:
            failures.append(f'{c}\n    -> exit code {proc.returncode}:\n{(proc.stdout + proc.stderr)[-3000:]}')
    assert not failures, 'README commands that fail as written:\n' + '\n'.join(failures)
    ran_scripts = {c.script for c in ran}
    assert {'validate.py', 'inference.py'} <= ran_scripts, f'the Quick start ran only {sorted(map(str, ran))}'


# ----------------------------------------------------------------------------------------------
# Python snippets and links

SNIPPET_DRIVER = r'''
import json, sys, traceback
failures = []
for line, code in json.load(sys.stdin):
    try:
        exec(compile(code, f'<README block at line {line}>', 'exec'), {'__name__': '__main__'})
    except BaseException:
        failures.append(f'block at line {line}:\n' + traceback.format_exc(limit=-3))
print('\n'.join(failures), file=sys.stderr)
sys.exit(1 if failures else 0)
'''


def test_python_blocks_run(tmp_path):
    blocks = [(f'{os.path.relpath(path, ROOT)}:{line}', code)
              for path in DOCS for line, _, code in fenced_blocks(path, 'python')]
    assert len(blocks) >= 3, 'the README should show the backbone, prediction and half-precision snippets'
    assert any('features_only=True' in code and 'out_indices' in code for _, code in blocks)
    proc = subprocess.run([PYTHON, '-c', SNIPPET_DRIVER], cwd=tmp_path, capture_output=True, text=True,
                          input=json.dumps(blocks), timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, f'Python blocks that fail as written:\n{proc.stderr[-4000:]}'


def test_readme_links_exist():
    text = _read(README)
    links = re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', text)
    local = [link for link in links if not re.match(r'^[a-z]+:', link)]
    assert local, 'no relative links found'
    missing = [link for link in local if not os.path.exists(os.path.join(ROOT, link))]
    assert not missing, f'README links to files that do not exist: {missing}'
