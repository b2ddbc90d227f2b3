/**
 * The ids a client certificate vouches for (docs/security.md, Binding worker ids), from Node's
 * rendering of the certificate: a quoted SAN value is one value, so a name holding ", URI:x" cannot
 * forge a second entry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PeerCertificate } from 'node:tls';
import { certificateIdentities, parseSubjectAltName } from '../../src/main/cluster/cert-identity';

function cert(cn: string | string[] | undefined, subjectaltname?: string): PeerCertificate {
  return { subject: cn === undefined ? {} : { CN: cn }, ...(subjectaltname !== undefined ? { subjectaltname } : {}) } as unknown as PeerCertificate;
}

test('SANs as Node renders them, quoted values included', () => {
  assert.deepEqual(parseSubjectAltName('DNS:a.example, URI:spiffe://zisk/w1, IP Address:10.0.0.1'), [
    { type: 'DNS', value: 'a.example' },
    { type: 'URI', value: 'spiffe://zisk/w1' },
    { type: 'IP Address', value: '10.0.0.1' },
  ]);
  assert.deepEqual(parseSubjectAltName('DNS:"evil, URI:sim-1", DNS:b'), [
    { type: 'DNS', value: 'evil, URI:sim-1' },
    { type: 'DNS', value: 'b' },
  ]);
  assert.deepEqual(parseSubjectAltName(''), []);
});

test('identities: the CN(s) and DNS/URI SANs only', () => {
  assert.deepEqual(certificateIdentities(cert('w0', 'DNS:w0.example, URI:sim-0, IP Address:127.0.0.1, email:a@b')), ['w0', 'w0.example', 'sim-0']);
  assert.deepEqual(certificateIdentities(cert(['a', 'b'])), ['a', 'b']);
  assert.deepEqual(certificateIdentities(cert(undefined, 'DNS:"x, URI:sim-1"')), ['x, URI:sim-1']);
  assert.deepEqual(certificateIdentities(undefined), []);
});
