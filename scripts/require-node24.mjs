// Runs before every root script. It is plain JavaScript on purpose: on the Node 20 that these
// machines ship, a .ts guard could not even start, and `node --test` would find no .ts tests,
// run nothing and exit 0. Failing here, loudly, is the point.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  console.error(
    `switchyard: this repository needs Node 24 (found ${process.version} at ${process.execPath}).\n` +
      'Run the scripts through npm (`npm test`, `npm start`) after `npm ci`: the root devDependency\n' +
      '`node@24` puts a Node 24 binary first on the PATH of every npm script.',
  );
  process.exit(1);
}
