/**
 * Which worker ids a client certificate vouches for (docs/security.md, Binding worker ids): its
 * subject CN and every DNS and URI subject alternative name, compared exactly. With
 * `[coordinator] bind_worker_id_to_cert` a worker may register or reconnect only under one of them,
 * so a certificate issued to one worker cannot take over another's id.
 */
import type { PeerCertificate } from 'node:tls';

/**
 * Node renders the SAN extension as `DNS:a, URI:b, IP Address:c`, quoting a value as a JSON string
 * when it holds a comma, a quote or anything unprintable (so an entry cannot forge the next one).
 */
export function parseSubjectAltName(text: string): { type: string; value: string }[] {
  const out: { type: string; value: string }[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon);
    let j = colon + 1;
    let value: string;
    if (text[j] === '"') {
      let k = j + 1;
      while (k < text.length && text[k] !== '"') k += text[k] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(text.slice(j, k + 1)) as string;
      } catch {
        break; // not Node's rendering: trust nothing after it
      }
      j = k + 1;
    } else {
      const comma = text.indexOf(', ', j);
      const end = comma < 0 ? text.length : comma;
      value = text.slice(j, end);
      j = end;
    }
    out.push({ type, value });
    if (text.startsWith(', ', j)) j += 2;
    i = j;
  }
  return out;
}

/** The subject CN(s) and DNS/URI SANs of a verified peer certificate; empty without one. */
export function certificateIdentities(cert: PeerCertificate | undefined): string[] {
  if (!cert) return [];
  const ids: string[] = [];
  const cn: unknown = cert.subject?.CN;
  if (typeof cn === 'string') ids.push(cn);
  else if (Array.isArray(cn)) for (const c of cn) if (typeof c === 'string') ids.push(c);
  if (typeof cert.subjectaltname === 'string') {
    for (const san of parseSubjectAltName(cert.subjectaltname)) if (san.type === 'DNS' || san.type === 'URI') ids.push(san.value);
  }
  return ids;
}

/** The refusal text a worker gets in `register_response.message` (docs/protocol.md, Transport security). */
export function certificateMismatchMessage(workerId: string, identities: readonly string[]): string {
  const held = identities.length > 0 ? identities.map((id) => `"${id}"`).join(', ') : 'none';
  return `Registration rejected: worker_id "${workerId}" does not match the client certificate (subject CN and DNS/URI SANs: ${held})`;
}
