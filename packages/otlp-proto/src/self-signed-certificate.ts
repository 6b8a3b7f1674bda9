import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SelfSignedCertificate {
  /** Where the PEM files are; the caller removes it when done. */
  readonly dir: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly certChain: Buffer;
  readonly privateKey: Buffer;
}

/**
 * A throwaway self-signed certificate for `localhost`, made with the system's openssl per run so
 * that no private key sits in the repository. A DNS name rather than 127.0.0.1, because Node
 * deprecates TLS server names that are IP addresses. For tests of TLS receivers and clients.
 */
export function selfSignedCertificate(): SelfSignedCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-tls-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      ...[
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
      ],
      ...['-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'],
      ...['-keyout', keyFile, '-out', certFile],
    ],
    { stdio: 'pipe' },
  );
  return { dir, certFile, keyFile, certChain: readFileSync(certFile), privateKey: readFileSync(keyFile) };
}
