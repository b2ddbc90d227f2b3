/**
 * Import rules, checked by `npm run lint` (and so by `npm test`): no import cycles anywhere, and
 * between the rooms of src/main (and the other top-level folders of src) only the arrows that
 * docs/architecture.md draws ("Rooms"). Type-only imports count: they are arrows too.
 */
const ROOMS = {
  // room: the rooms it may import from (besides itself and src/shared)
  'main/process': ['main/api', 'main/cluster', 'main/data', 'main/observability', 'main/scheduler', 'main/state', 'threads'],
  'main/api': ['main/cluster', 'main/data', 'main/observability', 'main/state', 'threads'],
  'main/cluster': ['main/data', 'main/observability'],
  'main/data': [],
  'main/observability': [],
  'main/scheduler': ['main/data', 'main/observability', 'threads'],
  'main/state': [],
  threads: [],
  sim: [],
  demo: ['sim', 'client'],
  client: [],
  shared: [],
};

const ALL = Object.keys(ROOMS);
const pathOf = (room) => `^src/${room}/`;

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'Modules that import each other in a circle: split the shared part into a leaf module.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...Object.entries(ROOMS).map(([room, allowed]) => ({
      name: `room-${room.replace('/', '-')}`,
      comment: `src/${room} may import only from ${['shared', ...allowed].join(', ')} (docs/architecture.md, Rooms).`,
      severity: 'error',
      from: { path: pathOf(room) },
      to: {
        path: `^src/(${ALL.filter((r) => r !== room && r !== 'shared' && !allowed.includes(r)).join('|')})/`,
      },
    })),
    {
      name: 'no-loose-files-in-main',
      comment: 'Every module of src/main lives in a room.',
      severity: 'error',
      from: {},
      to: { path: '^src/main/[^/]+\\.ts$' },
    },
  ],
  options: {
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^dist/' },
  },
};
