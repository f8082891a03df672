/**
 * The layering of ../shared/DESIGN.md ("Layout and dependency direction"),
 * checked by `make test` (npm run depcruise):
 *
 *   control-api → call → {sip/app, agent, media} → codecs → audio
 *   config and store below all of them; sip/server imports nothing of ours.
 *
 * engine.ts and main.ts are the composition root and may import anything;
 * bench/ and test/ are outside the layers. Type-only imports count: a type
 * that points the wrong way is a wrong-way dependency all the same.
 */
const OURS = '^(audio|codecs|media|agent|call|sip|control-api|store|config)/|^(engine|main)\\.ts$'

/** Folder → the folders it may import besides itself. */
const LAYERS = {
  'config/': [],
  'store/': ['config/'],
  'audio/': [],
  'codecs/': ['audio/'],
  'media/': ['codecs/', 'audio/', 'config/'],
  'agent/': ['media/', 'codecs/', 'audio/', 'config/'],
  'sip/app/': ['config/', 'store/'],
  'sip/server/': [],
  'call/': ['sip/app/', 'agent/', 'media/', 'codecs/', 'audio/', 'config/', 'store/'],
  // the agent adapter catalog validates agent bodies; everything live goes through call/
  'control-api/': ['call/', 'agent/', 'config/', 'store/'],
}

/**
 * Single files a layer may import from a folder it otherwise may not: pure
 * modules with no SQL and no database handle that sit in store/ beside the
 * data they belong to.
 */
const FILE_EXCEPTIONS = {
  // the one Standard Webhooks signer, shared with control-api and call (agent HTTP tools sign with it)
  'agent/': ['store/webhook-signature.ts'],
}

const escape = (s) => s.replace(/[/.]/g, (c) => `\\${c}`)

const layerRules = Object.entries(LAYERS).map(([layer, may]) => ({
  name: `${layer.replace(/\/$/, '').replace('/', '-')}-imports-only-${may.length ? may.map((m) => m.replace(/\/$/, '')).join('+') : 'itself'}`,
  comment: `${layer} may import ${may.length ? may.join(', ') : 'nothing of ours'} (see its README and DESIGN.md)`,
  severity: 'error',
  from: { path: `^${escape(layer)}` },
  to: { path: OURS, pathNot: `^(${[layer, ...may].map(escape).join('|')}${(FILE_EXCEPTIONS[layer] ?? []).map((f) => `|${escape(f)}$`).join('')})` },
}))

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'no-cycles',
      comment: 'a cycle makes two modules one; split the shared part out',
      severity: 'error',
      from: { path: OURS },
      to: { circular: true },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      comment: 'an import that resolves to nothing (tsx is loaded only by the worker bootstrap, from sources)',
      from: { path: OURS, pathNot: 'media-plane-entry\\.mjs$' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|test|bench)/' },
    tsPreCompilationDeps: true,
    // TypeScript 7 (our tsc) has no compiler API that dependency-cruiser can use; swc parses the .ts files
    parser: 'swc',
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.mjs', '.js', '.json'] },
  },
}
