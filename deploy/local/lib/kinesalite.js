'use strict';
// Runs kinesalite (a library) as a server on 127.0.0.1:KINESALITE_PORT, in memory.
// Stream state changes take 0 ms instead of 500, and the account shard limit is raised from 10
// so that parallel tests, each with its own streams, do not hit it.
require('./abort-guard.js'); // a client aborting a request must not stop the server
const kinesalite = require('kinesalite');

const port = Number(process.env.KINESALITE_PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error(`kinesalite: KINESALITE_PORT=${process.env.KINESALITE_PORT} is not a port`);
  process.exit(2);
}

const server = kinesalite({
  createStreamMs: 0,
  deleteStreamMs: 0,
  updateStreamMs: 0,
  shardLimit: 10000,
});
server.on('error', (err) => {
  console.error(`kinesalite: ${err.message}`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => {
  console.log(`kinesalite listening on http://127.0.0.1:${port}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
