/**
 * Import rules, checked by `npm run lint` (and so by `npm test`): no import cycles anywhere. The
 * rooms of src/main and the arrows allowed between them are added as the rooms land
 * (docs/architecture.md, "Rooms").
 */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'Modules that import each other in a circle: split the shared part into a leaf module.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^dist/' },
  },
};
