import { spawn } from 'node:child_process';

export interface ToolRun {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a command-line tool with `stdin` as its input and collects its output. A missing binary
 * rejects with `missingHint` (what to run to install it); a tool killed by a signal rejects; any
 * exit code resolves, since the tools we run give their verdict through it.
 */
export function runTool(
  command: string,
  args: readonly string[],
  stdin: string,
  missingHint: string,
): Promise<ToolRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'EACCES')
        reject(new Error(`${command} is missing: ${missingHint}`));
      else reject(error);
    });
    child.on('close', (exitCode, signal) => {
      if (exitCode === null)
        reject(new Error(`${command} ${args.join(' ')} was killed by ${signal}; stderr: ${stderr}`));
      else resolve({ exitCode, stdout, stderr });
    });
    // A tool may exit before reading all of stdin (e.g. at the first parse error); that EPIPE is not
    // a failure of ours, its verdict arrives through the exit status.
    child.stdin.on('error', () => {});
    child.stdin.end(stdin);
  });
}
