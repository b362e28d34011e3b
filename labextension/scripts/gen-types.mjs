/**
 * Writes src/api-types.ts from eda_gateway/openapi.json: the REST shapes
 * (openapi-typescript) and the level thresholds (the `x-thresholds` of the
 * `Level` schema), so the UI never keeps a copy of the contract by hand.
 *
 *   jlpm gen:types            rewrite src/api-types.ts
 *   jlpm gen:types OUT.ts     write elsewhere (tests/test_ui_contract.py
 *                             compares that with the committed file)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import openapiTS, { astToString } from 'openapi-typescript';

const here = new URL('.', import.meta.url);
const documentUrl = new URL('../../eda_gateway/openapi.json', here);
const target = process.argv[2] ?? fileURLToPath(new URL('../src/api-types.ts', here));

const document = JSON.parse(readFileSync(documentUrl, 'utf-8'));
const thresholds = document.components?.schemas?.Level?.['x-thresholds'];
if (!thresholds || !(typeof thresholds.medium === 'number' && typeof thresholds.high === 'number')) {
  throw new Error('openapi.json: components.schemas.Level needs x-thresholds {medium, high}');
}

const ast = await openapiTS(document);
const header = `/**
 * Generated from eda_gateway/openapi.json by \`jlpm gen:types\`
 * (labextension/scripts/gen-types.mjs): do not edit by hand.
 * tests/test_ui_contract.py fails when this file and openapi.json disagree.
 */

`;
const constants = `
/** Shares of a budget at which a level starts (openapi.json, Level's x-thresholds). */
export const LEVEL_THRESHOLDS = {
  medium: ${JSON.stringify(thresholds.medium)},
  high: ${JSON.stringify(thresholds.high)}
} as const;
`;
writeFileSync(target, header + astToString(ast) + constants);
