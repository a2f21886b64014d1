/**
 * Which upstream answered a verification request. The deployer sends a fresh random nonce in
 * VERIFY_HEADER; the forwarder strips it before the request reaches the app and puts
 * sha256(nonce, entry id, slot port) in ANSWER_HEADER (replacing any the app set). Only an answer
 * that went through this deployment's entry to the new slot carries the expected token: another
 * site serving the domain cannot forge it (its app never sees the nonce), and no client learns an
 * entry id or port from it.
 */
import { createHash, randomBytes } from 'node:crypto';

export const VERIFY_HEADER = 'x-codeb-verify';
export const ANSWER_HEADER = 'x-codeb-answered-by';
const NONCE = /^[0-9a-f]{32}$/;

export function newNonce(): string {
  return randomBytes(16).toString('hex');
}

export function isNonce(value: unknown): value is string {
  return typeof value === 'string' && NONCE.test(value);
}

export function answerToken(nonce: string, entryId: string, port: number): string {
  return createHash('sha256').update(`${nonce}\n${entryId}\n${port}`).digest('hex');
}
