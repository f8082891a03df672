/**
 * JSGF grammar generation from an agent's expected phrases, as classic IVR
 * speech grammars do. Constraining the search to the phrases is what makes the
 * small offline model usable on telephone audio; words the dictionary does not
 * know are dropped from the grammar (a phrase made only of them is skipped),
 * because pocketsphinx refuses to load a grammar with out-of-vocabulary words.
 */
import { readFileSync } from 'node:fs'

export const POCKETSPHINX_MODEL_DIR = '/usr/share/pocketsphinx/model/en-us'
export const POCKETSPHINX_DICT = `${POCKETSPHINX_MODEL_DIR}/cmudict-en-us.dict`

let dictWords: Set<string> | undefined

export function dictionary(path = POCKETSPHINX_DICT): Set<string> {
  if (dictWords && path === POCKETSPHINX_DICT) return dictWords
  const words = new Set<string>()
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const sp = line.indexOf(' ')
    if (sp <= 0) continue
    words.add(line.slice(0, sp).replace(/\(\d+\)$/, ''))
  }
  if (path === POCKETSPHINX_DICT) dictWords = words
  return words
}

/** Lowercase, digits spelled out isn't attempted; punctuation becomes spaces. */
export function normalizePhrase(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9' ]+/g, ' ')
    .split(/\s+/)
    .filter((w) => w.length > 0)
}

export interface GeneratedGrammar {
  jsgf: string
  /** Phrases that made it into the grammar, normalised. */
  phrases: string[]
  /** Words dropped because the dictionary lacks them. */
  oov: string[]
}

export function buildJsgf(phrases: string[], dict: Set<string> = dictionary()): GeneratedGrammar {
  const kept = new Set<string>()
  const oov = new Set<string>()
  for (const p of phrases) {
    const words = normalizePhrase(p).filter((w) => {
      if (dict.has(w)) return true
      oov.add(w)
      return false
    })
    if (words.length) kept.add(words.join(' '))
  }
  const list = [...kept]
  if (list.length === 0) throw new Error('no in-vocabulary phrase to build a grammar from')
  const jsgf = ['#JSGF V1.0;', 'grammar agent;', `public <utt> = ${list.join(' | ')};`, ''].join('\n')
  return { jsgf, phrases: list, oov: [...oov] }
}
