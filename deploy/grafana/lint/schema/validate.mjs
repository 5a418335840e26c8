// Validates Grafana dashboard JSON files against @grafana/schema, the version in
// package-lock.json (the one docker-compose.yml pins): JSON Schemas generated from its
// TypeScript types with ts-json-schema-generator, checked with ajv. The dashboard model
// leaves a panel's `options` and `fieldConfig.defaults.custom` open, so each is checked
// against the types of its panel kind. Unknown keys are errors (interfaces are closed).
// Prints one line per error, "ok" per valid file; exits 1 on any error.
//   node validate.mjs DASHBOARD.json...
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import Ajv from "ajv";
import { createGenerator } from "ts-json-schema-generator";

const require = createRequire(import.meta.url);
const raw = join(dirname(require.resolve("@grafana/schema/package.json")), "dist/esm/raw");
const version = require("@grafana/schema/package.json").version;

// Panel kind -> its panelcfg types file; FieldConfig only where the kind has one.
const PANELS = {
  stat: ["stat/panelcfg/x/StatPanelCfg_types.gen.d.ts", false],
  timeseries: ["timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen.d.ts", true],
  table: ["table/panelcfg/x/TablePanelCfg_types.gen.d.ts", true],
  bargauge: ["bargauge/panelcfg/x/BarGaugePanelCfg_types.gen.d.ts", false],
};

function schemaOf(path, type) {
  return createGenerator({ path, type, skipTypeCheck: true, expose: "export", additionalProperties: false }).createSchema(type);
}

// The dashboard model types an annotation's query for Grafana's own annotations only;
// Grafana 11.3's Prometheus data source reads these fields from the annotation itself
// (processAnnotationResponse in @grafana/prometheus 11.3.0, datasource.js), and the
// foundation SDK's AnnotationQuery declares them. Nothing else is added.
const PROMETHEUS_ANNOTATION = {
  expr: { type: "string" },
  step: { type: "string" },
  titleFormat: { type: "string" },
  textFormat: { type: "string" },
  tagKeys: { type: "string" },
  useValueForTime: { type: "boolean" },
};

const dashboardSchema = schemaOf(join(raw, "dashboard/x/dashboard_types.gen.d.ts"), "Dashboard");
Object.assign(dashboardSchema.definitions.AnnotationQuery.properties, PROMETHEUS_ANNOTATION);
const ajv = new Ajv({ allErrors: true, strict: false });
const validators = { dashboard: ajv.compile(dashboardSchema) };
for (const [kind, [file, hasFieldConfig]] of Object.entries(PANELS)) {
  validators[`${kind}.options`] = ajv.compile(schemaOf(join(raw, "composable", file), "Options"));
  if (hasFieldConfig) validators[`${kind}.custom`] = ajv.compile(schemaOf(join(raw, "composable", file), "FieldConfig"));
}

function check(validate, value, where, errors) {
  if (!validate(value)) {
    for (const e of validate.errors) {
      const detail = e.params && e.params.additionalProperty ? ` '${e.params.additionalProperty}'` : e.params && e.params.allowedValues ? ` ${JSON.stringify(e.params.allowedValues)}` : "";
      errors.push(`${where}${e.instancePath}: ${e.message}${detail}`);
    }
  }
}

function panels(board) {
  const out = [];
  (board.panels || []).forEach((panel, i) => {
    out.push([panel, `panels[${i}]`]);
    (panel.panels || []).forEach((inner, j) => out.push([inner, `panels[${i}].panels[${j}]`]));
  });
  return out;
}

let failed = false;
for (const file of process.argv.slice(2)) {
  const board = JSON.parse(readFileSync(file, "utf8"));
  const errors = [];
  check(validators.dashboard, board, "", errors);
  for (const [panel, where] of panels(board)) {
    if (panel.type === "row") continue;
    const options = validators[`${panel.type}.options`];
    if (!options) {
      errors.push(`${where}: panel type '${panel.type}' has no schema here; add it to PANELS`);
      continue;
    }
    check(options, panel.options, `${where}.options`, errors);
    const custom = validators[`${panel.type}.custom`];
    const defaults = (panel.fieldConfig || {}).defaults || {};
    if (custom && defaults.custom !== undefined) check(custom, defaults.custom, `${where}.fieldConfig.defaults.custom`, errors);
  }
  for (const e of errors) console.log(`${file}: ${e}`);
  if (errors.length) failed = true;
  else console.log(`${file}: ok (@grafana/schema ${version})`);
}
process.exit(failed ? 1 : 0);
