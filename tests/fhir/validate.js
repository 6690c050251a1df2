// Validate FHIR R4 resources offline with FHIR.js (the npm package `fhir`,
// pinned in package-lock.json), which checks every element against the R4
// StructureDefinitions: known elements only, cardinalities, data types and
// codes of required bindings.
//
//   node validate.js FILE...   (each FILE holds one resource, e.g. a Bundle)
//
// Prints one JSON object per file: {"file", "valid", "messages"}, and exits
// 1 when any message has the severity "error".
'use strict';
const fs = require('fs');
const { Fhir } = require('fhir');

const fhir = new Fhir();
let failed = false;
for (const file of process.argv.slice(2)) {
  const resource = JSON.parse(fs.readFileSync(file, 'utf8'));
  const result = fhir.validate(resource, { errorOnUnexpected: true });
  if (result.messages.some((m) => m.severity === 'error')) failed = true;
  process.stdout.write(JSON.stringify({ file, valid: result.valid, messages: result.messages }) + '\n');
}
process.exit(failed ? 1 : 0);
