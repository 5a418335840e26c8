// Formats values the way Grafana's panels do, with @grafana/data's own display
// processor (unit, decimals, value mappings, thresholds and colour scheme of a field).
// Reads [{"config": <field config>, "values": [...]}] as JSON on stdin and writes, per
// item, the displayed text ("12.5 days", "4.6%") and colour of each value.
// null stands for a missing value; the strings "Infinity" and "NaN" for those numbers.
// @grafana/data expects a browser; a window and navigator object are all it needs here.
globalThis.window = globalThis;
globalThis.navigator ??= { language: "en-US", languages: ["en-US"] };
const { readFileSync } = require("node:fs");
const { createTheme, FieldType, formattedValueToString, getDisplayProcessor } = require("@grafana/data");

const theme = createTheme();
const number = (v) => (v === "Infinity" ? Infinity : v === "NaN" ? NaN : v);
const items = JSON.parse(readFileSync(0, "utf8"));
const out = items.map(({ config, values }) => {
  const field = { name: "value", type: FieldType.number, config, values: values.map(number) };
  const display = getDisplayProcessor({ field, theme });
  return values.map((v) => {
    const shown = display(number(v));
    return { text: formattedValueToString(shown), color: shown.color };
  });
});
process.stdout.write(JSON.stringify(out));
