<?php

declare(strict_types=1);

namespace Qsm\Webhooks\Tests;

use PHPUnit\Framework\TestCase;

/**
 * The package says PHP 7.4; the test machine has 8.2. This reads the package's sources with
 * PHP's own tokenizer and refuses what 7.4 cannot run: PHP 8 syntax (match, ?->, attributes,
 * enums, readonly, constructor promotion, `mixed`/`never`/`static` types, catch without a
 * variable, a trailing comma in a parameter list) and functions added in 8.x.
 */
final class Php74SyntaxTest extends TestCase
{
    private const PHP8_FUNCTIONS = ['str_contains', 'str_starts_with', 'str_ends_with', 'array_is_list',
        'get_debug_type', 'fdiv', 'get_resource_id', 'preg_last_error_msg', 'array_find', 'json_validate'];

    /** @return array<string, array{0: string}> */
    public function sources(): array
    {
        $out = [];
        foreach (array_merge(glob(__DIR__ . '/../src/*.php'), [__DIR__ . '/../autoload.php'], glob(__DIR__ . '/../examples/*.php')) as $f) {
            $out[basename($f)] = [$f];
        }
        return $out;
    }

    /** @dataProvider sources */
    public function testRunsOnPhp74(string $file): void
    {
        $tokens = array_values(array_filter(token_get_all((string)file_get_contents($file)), static function ($t): bool {
            return !is_array($t) || !in_array($t[0], [T_WHITESPACE, T_COMMENT, T_DOC_COMMENT], true);
        }));
        $problems = [];
        $php8 = [];
        foreach (['T_MATCH', 'T_NULLSAFE_OBJECT_OPERATOR', 'T_ATTRIBUTE', 'T_ENUM', 'T_READONLY'] as $name) {
            if (defined($name)) {
                $php8[constant($name)] = $name;
            }
        }
        $inParams = 0;       // depth inside a function declaration's parameter list
        $afterFunction = false;
        foreach ($tokens as $i => $t) {
            $id = is_array($t) ? $t[0] : null;
            $text = is_array($t) ? $t[1] : $t;
            $line = is_array($t) ? $t[2] : 0;
            $prev = $tokens[$i - 1] ?? null;
            $next = $tokens[$i + 1] ?? null;
            if ($id !== null && isset($php8[$id])) {
                $problems[] = "$php8[$id] on line $line";
            }
            if ($id === T_STRING && in_array(strtolower($text), self::PHP8_FUNCTIONS, true) && $next === '(') {
                $problems[] = "$text() on line $line";
            }
            if ($id === T_STRING && in_array(strtolower($text), ['mixed', 'never'], true) && ($prev === ':' || $prev === '(' || $prev === ',' || $prev === '?')) {
                $problems[] = "the $text type on line $line";
            }
            if ($id === T_STATIC && $prev === ':') {
                $problems[] = "the static return type on line $line";
            }
            if ($id === T_CATCH) {
                $j = $i + 2;   // catch ( Type $e )
                while (isset($tokens[$j]) && $tokens[$j] !== ')' && !(is_array($tokens[$j]) && $tokens[$j][0] === T_VARIABLE)) {
                    $j++;
                }
                if (($tokens[$j] ?? null) === ')') {
                    $problems[] = "catch without a variable on line $line";
                }
            }
            if ($id === T_FUNCTION || $id === T_FN) {
                $afterFunction = true;
            } elseif ($afterFunction && $text === '(') {
                $inParams = 1;
                $afterFunction = false;
            } elseif ($inParams > 0) {
                if ($text === '(') {
                    $inParams++;
                } elseif ($text === ')') {
                    $inParams--;
                    if ($inParams === 0 && $prev === ',') {
                        $problems[] = "a trailing comma in a parameter list on line $line";
                    }
                } elseif ($inParams === 1 && in_array($id, [T_PUBLIC, T_PROTECTED, T_PRIVATE], true)) {
                    $problems[] = "constructor promotion on line $line";
                }
            }
        }
        self::assertSame([], $problems, basename($file));
    }

    public function testTheCheckFindsWhatItLooksFor(): void
    {
        $file = tempnam(sys_get_temp_dir(), 'php74');
        file_put_contents($file, '<?php class A { public function __construct(private int $x, ) {} function f(): mixed { return $this?->x; } }'
            . ' try {} catch (\Exception) {} echo str_contains("a", "b") ? match(1) { 1 => 2 } : 0;');
        try {
            $this->testRunsOnPhp74($file);
            self::fail('PHP 8 code passed the check');
        } catch (\PHPUnit\Framework\ExpectationFailedException $e) {
            foreach (['T_MATCH', 'T_NULLSAFE_OBJECT_OPERATOR', 'str_contains()', 'the mixed type', 'catch without a variable', 'trailing comma', 'constructor promotion'] as $what) {
                self::assertStringContainsString($what, $e->getComparisonFailure() ? $e->getComparisonFailure()->getActualAsString() : $e->getMessage());
            }
        } finally {
            unlink($file);
        }
    }
}
