// A command given as one string (`command: nginx -g 'daemon off;'`) split into words as
// docker-compose does (Python's shlex.split, POSIX rules): quotes group, backslash escapes
// outside single quotes, no variables, globs or operators. Undefined if a quote is unclosed.

export function splitWords(s: string): string[] | undefined {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '' | '"' | "'" = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (quote === "'") {
      if (c === "'") quote = '';
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = '';
      else if (c === '\\' && i + 1 < s.length && '\\"$`\n'.includes(s[i + 1] as string)) word += s[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\') {
      if (i + 1 < s.length) word += s[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote !== '') return undefined;
  if (inWord) words.push(word);
  return words;
}
