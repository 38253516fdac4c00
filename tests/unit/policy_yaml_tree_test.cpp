// The YAML reader under the policy loader (src/policy/yaml_tree.h): the tree,
// positions, null semantics and anchors it builds from libyaml's events, and
// hostile input that must end in an error with a position, never a crash.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "../../src/policy/yaml_tree.h"
#include "policy_test_util.h"

namespace bulkhead::policy::yamltree {
namespace {

using Strings = std::vector<std::string>;

struct Parsed {
  bool ok = false;
  std::vector<Document> documents;
  Strings errors;
};

Parsed parse(const std::string& text, uint64_t* aliasNodesLeft = nullptr) {
  Parsed p;
  std::vector<Diagnostic> errors;
  p.ok = parseDocuments(
      text, "t.yaml", 100, [&](const Document& d) { p.documents.push_back(d); }, errors,
      aliasNodesLeft);
  p.errors = testing_util::strings(errors);
  return p;
}

// The children of a sequence or map, in order (aliases followed).
std::vector<const Node*> children(const Document& d, const Node& n) {
  std::vector<const Node*> out;
  for (uint32_t i = n.firstChild; i != kNoNode; i = d.nodes[i].nextSibling)
    out.push_back(&d.at(i));
  return out;
}

std::string where(const Node& n) {
  return std::to_string(n.line) + ":" + std::to_string(n.column);
}

TEST(PolicyYamlTree, PlainNullSpellingsAndEmptyValuesAreNullQuotedOnesAreStrings) {
  const Parsed p = parse(
      "- ~\n- null\n- Null\n- NULL\n-\n- &n null\n- \"null\"\n- 'NULL'\n"
      "- nULL\n- !!str null\n- ! ~\n- ''\n");
  ASSERT_TRUE(p.ok) << p.errors[0];
  ASSERT_EQ(p.documents.size(), 1u);
  const Document& d = p.documents[0];
  const auto items = children(d, d.nodes[d.root]);
  ASSERT_EQ(items.size(), 12u);
  for (size_t i = 0; i < 6; ++i)
    EXPECT_EQ(items[i]->kind, NodeKind::kNull) << i;
  const Strings strings = {"null", "NULL", "nULL", "null", "~", ""};
  for (size_t i = 6; i < 12; ++i) {
    EXPECT_EQ(items[i]->kind, NodeKind::kScalar) << i;
    EXPECT_EQ(d.scalar(*items[i]), strings[i - 6]);
  }
}

TEST(PolicyYamlTree, PositionsAreOneBasedAndStartAtAnchors) {
  const Parsed p = parse("a: 1\nb:\n  - x\n  - &y {k: v}\n  - *y\nc: 'q'\nd:\ne: [1, 2]\n");
  ASSERT_TRUE(p.ok);
  const Document& d = p.documents.at(0);
  const Node& root = d.nodes[d.root];
  EXPECT_EQ(root.kind, NodeKind::kMap);
  EXPECT_EQ(where(root), "1:1");
  const auto kv = children(d, root);
  ASSERT_EQ(kv.size(), 10u);
  EXPECT_EQ(where(*kv[2]), "2:1");  // key b
  const auto seq = children(d, *kv[3]);
  EXPECT_EQ(where(*kv[3]), "3:3");
  ASSERT_EQ(seq.size(), 3u);
  EXPECT_EQ(where(*seq[0]), "3:5");
  EXPECT_EQ(where(*seq[1]), "4:5");         // the anchor, not the brace
  EXPECT_EQ(seq[2]->kind, NodeKind::kMap);  // the alias, followed
  EXPECT_EQ(where(*kv[5]), "6:4");
  // An empty value is where the next token starts (as yaml-cpp reported it).
  EXPECT_EQ(kv[7]->kind, NodeKind::kNull);
  EXPECT_EQ(where(*kv[7]), "8:1");
  EXPECT_EQ(where(*kv[9]), "8:4");
}

TEST(PolicyYamlTree, EveryDocumentOfAStreamEmptyOnesSkipped) {
  const Parsed p = parse("a: 1\n---\n---\n# only a comment\n...\n--- ~\n---\nb: 2\n...\n");
  ASSERT_TRUE(p.ok);
  ASSERT_EQ(p.documents.size(), 2u);
  EXPECT_EQ(p.documents[0].line, 1);
  EXPECT_EQ(p.documents[1].line, 7);
  EXPECT_EQ(where(p.documents[1].nodes[p.documents[1].root]), "8:1");
}

TEST(PolicyYamlTree, AnchorsBelongToTheirDocumentAndTheLastDefinitionWins) {
  const Parsed redefined = parse("- &x 1\n- &x 2\n- *x\n");
  ASSERT_TRUE(redefined.ok);
  const Document& d = redefined.documents.at(0);
  EXPECT_EQ(d.scalar(*children(d, d.nodes[d.root]).at(2)), "2");

  const Parsed p = parse("a: &x 1\n---\nb: *x\n");
  EXPECT_FALSE(p.ok);
  EXPECT_EQ(p.documents.size(), 1u);  // the first document was complete
  EXPECT_EQ(p.errors, (Strings{"t.yaml:3:4: invalid YAML: the referenced anchor is not defined"}));
}

TEST(PolicyYamlTree, TagsAreIgnored) {
  const Parsed p = parse("!!map {a: !custom b, !!str c: !!seq [d]}\n");
  ASSERT_TRUE(p.ok);
  const Document& d = p.documents.at(0);
  const auto kv = children(d, d.nodes[d.root]);
  ASSERT_EQ(kv.size(), 4u);
  EXPECT_EQ(d.scalar(*kv[1]), "b");
  EXPECT_EQ(d.scalar(*kv[2]), "c");
  EXPECT_EQ(kv[3]->kind, NodeKind::kSequence);
}

TEST(PolicyYamlTree, ScalarsKeepEmbeddedNulsFromEscapes) {
  const Parsed p = parse("a: \"x\\0y\"\n");
  ASSERT_TRUE(p.ok);
  const Document& d = p.documents.at(0);
  EXPECT_EQ(d.scalar(*children(d, d.nodes[d.root]).at(1)), std::string("x\0y", 3));
}

// --- hostile input: an error with file:line:col, never a crash ------------

struct BadInput {
  const char* name;
  std::string text;
  std::string want;
};

class PolicyYamlBadInput : public testing::TestWithParam<BadInput> {};

TEST_P(PolicyYamlBadInput, IsAnErrorAtItsPosition) {
  const Parsed p = parse(GetParam().text);
  EXPECT_FALSE(p.ok);
  EXPECT_EQ(p.errors, (Strings{GetParam().want}));
}

const BadInput kBadInputs[] = {
    {"InvalidUtf8", "a: b\nc: d\xff\n",
     "t.yaml:2:5: invalid YAML: invalid leading UTF-8 octet (0xFF)"},
    {"TruncatedUtf8AtEnd", "a: b\nc: \xc3",
     "t.yaml:2:4: invalid YAML: incomplete UTF-8 octet sequence"},
    {"Utf16Surrogate", "a: \xed\xa0\x80\n",
     "t.yaml:1:4: invalid YAML: invalid Unicode character (0xD800)"},
    {"NulByte", std::string("a: b\nc: x\0y\n", 12),
     "t.yaml:2:5: invalid YAML: control characters are not allowed (0x00)"},
    {"UnterminatedDoubleQuote", "a: \"abc\nb: 1\n",
     "t.yaml:3:1: invalid YAML: found unexpected end of stream (while scanning a quoted scalar "
     "at line 1, column 4)"},
    {"UnterminatedSingleQuote", "a: 'abc",
     "t.yaml:1:8: invalid YAML: found unexpected end of stream (while scanning a quoted scalar "
     "at line 1, column 4)"},
    {"UnterminatedFlowAtEnd", "a: [1, {b: 2",
     // libyaml ends the last line at the end of the stream.
     "t.yaml:2:1: invalid YAML: did not find expected ',' or '}' (while parsing a flow mapping "
     "at line 1, column 8)"},
    {"UnsupportedYamlVersion", "%YAML 2.0\n---\na: 1\n",
     "t.yaml:1:1: invalid YAML: found incompatible YAML document"},
    {"AliasWithoutName", "a: *\n",
     "t.yaml:1:5: invalid YAML: did not find expected alphabetic or numeric character (while "
     "scanning an alias at line 1, column 4)"},
};

INSTANTIATE_TEST_SUITE_P(All, PolicyYamlBadInput, testing::ValuesIn(kBadInputs),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(PolicyYamlTree, AliasBombBreaksTheDocumentLimitWithoutABundleBudget) {
  // Ten levels of ten aliases: 10^10 nodes if expanded.
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'j'; ++c) {
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i)
      bomb += std::string(i ? ", *" : "*") + char(c - 1);
    bomb += "]\n";
  }
  const Parsed p = parse(bomb);
  // The fourth *f of g: each stands for 1,111,111 nodes.
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0],
            "t.yaml:7:16: document too large: more than 4194304 YAML nodes (counting what "
            "aliases expand to)");
}

TEST(PolicyYamlTree, MutatedInputIsParsedOrRejectedWithAPosition) {
  const std::string seed =
      "apiVersion: bulkhead/v1\nkind: App\nmetadata: {name: a, labels: {x: \"y\"}}\n"
      "spec:\n  egress:\n    - &r {to: [db, 'web'], ports: [tcp/80]}\n    - *r\n---\n"
      "- [a, {b: c}]\n- |\n  text\n- ? k\n  : v\n";
  const char kBytes[] = "[]{}:,-?&*!|>'\"#%@`\n\t \0\xff\xc3";
  std::mt19937 rng(9);
  for (int round = 0; round < 3000; ++round) {
    std::string text = seed;
    const int edits = 1 + int(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % text.size();
      const char c = kBytes[rng() % (sizeof kBytes - 1)];
      if (rng() % 2) {
        text[at] = c;
      } else {
        text.insert(text.begin() + long(at), c);
      }
    }
    std::vector<Diagnostic> errors;
    const bool ok = parseDocuments(
        text, "t.yaml", 100, [](const Document&) {}, errors);
    EXPECT_EQ(ok, errors.empty()) << text;
    for (const Diagnostic& d : errors) {
      EXPECT_GE(d.loc.line, 1) << d.toString() << "\n" << text;
      EXPECT_GE(d.loc.column, 1) << d.toString() << "\n" << text;
    }
  }
}

}  // namespace
}  // namespace bulkhead::policy::yamltree
