// Validate the example messages against the topic JSON Schemas with ajv (Node), as an upstream
// team in JavaScript would: argv[2] = streaming/schemas. Prints one JSON object: file -> verdict.
"use strict";
const fs = require("fs");
const path = require("path");
const Ajv2020 = require("ajv/dist/2020");
const addFormats = require("ajv-formats");

const dir = process.argv[2];
const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);
const validators = {};
for (const table of ["clicks", "orders", "refunds"]) {
  const schema = JSON.parse(fs.readFileSync(path.join(dir, "v1", `${table}.schema.json`), "utf8"));
  validators[table] = ajv.compile(schema);
}
const index = JSON.parse(fs.readFileSync(path.join(dir, "examples", "index.json"), "utf8"));
const out = {};
for (const ex of index.examples) {
  const text = fs.readFileSync(path.join(dir, "examples", ex.file), "utf8");
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    out[ex.file] = { valid: false, errors: ["not JSON: " + e.message] };
    continue;
  }
  const validate = validators[ex.topic];
  const ok = validate(doc);
  out[ex.file] = { valid: ok, errors: ok ? [] : validate.errors.map((e) => `${e.instancePath} ${e.message}`) };
}
process.stdout.write(JSON.stringify(out));
