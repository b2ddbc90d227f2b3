/**
 * --print-config: the effective configuration as TOML that parses back to the same values, with the
 * origin of every value, so an operator can see which layer won.
 */
import { stringify } from 'smol-toml';
import type { ConfigSource } from './types';
import type { LoadedConfig } from './load';
import { CONFIG_KEYS, SECTIONS, type ConfigValue } from './schema';

export function describeSource(source: ConfigSource | undefined): string {
  switch (source?.kind) {
    case undefined:
    case 'default':
      return 'default';
    case 'file':
      return `from ${source.path}`;
    case 'legacy-file':
      return `from legacy config_file ${source.path}`;
    case 'env':
      return `from env ${source.name}`;
    case 'cli':
      return `from ${source.flag}`;
  }
}

// A file name may contain a newline; unescaped it would end the comment and inject TOML.
function commentSafe(text: string): string {
  let out = '';
  for (const c of text) {
    const code = c.charCodeAt(0);
    out += code < 0x20 || code === 0x7f ? `\\x${code.toString(16).padStart(2, '0')}` : c;
  }
  return out;
}

function tomlAssignment(key: string, value: Exclude<ConfigValue, undefined>): string {
  // smol-toml does the quoting and escaping; one key per call keeps the line layout ours.
  return stringify({ [key]: value }).trimEnd();
}

export function renderConfigToml(loaded: LoadedConfig): string {
  const sectionValues = loaded.config as unknown as Record<string, Record<string, ConfigValue>>;
  const lines: string[] = [
    '# Effective zisk-coordinator configuration.',
    '# Precedence (later wins): defaults < TOML file(s) < environment < command line.',
    `# Files read: ${loaded.files.length > 0 ? commentSafe(loaded.files.join(', ')) : '(none)'}`,
  ];
  for (const section of SECTIONS) {
    lines.push('', `[${section}]`);
    for (const spec of CONFIG_KEYS) {
      if (spec.section !== section) continue;
      const value = sectionValues[section]?.[spec.key];
      const origin = commentSafe(spec.fixed ? 'package version (cannot be set)' : describeSource(loaded.sources.get(spec.path)));
      if (value === undefined) lines.push(`# ${spec.key} = (unset)  # ${origin}`);
      else lines.push(`${tomlAssignment(spec.key, value)}  # ${origin}`);
    }
  }
  return lines.join('\n') + '\n';
}
