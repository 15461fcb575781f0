// Reads a Hydra label space with yaml-cpp, typed as Hydra's config declares
// its fields (MIT-SPARK/Hydra, declare_config(Labelspace)): the count as
// size_t, the label sets as uint32, label_names as string-to-string maps
// whose label goes through std::stoi. Prints what it read, one item a line;
// a value Hydra could not read makes yaml-cpp throw (exit status 1).
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <iostream>
#include <map>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  try {
    const YAML::Node node = YAML::LoadFile(argv[1]);
    std::cout << "total_semantic_labels " << node["total_semantic_labels"].as<size_t>() << "\n";
    for (const char* key : {"dynamic_labels", "invalid_labels", "object_labels", "surface_places_labels"}) {
      std::cout << key;
      for (const auto value : node[key].as<std::vector<uint32_t>>()) std::cout << " " << value;
      std::cout << "\n";
    }
    for (const auto& entry : node["label_names"].as<std::vector<std::map<std::string, std::string>>>()) {
      std::cout << "label " << std::stoi(entry.at("label")) << " " << entry.at("name") << "\n";
    }
  } catch (const std::exception& error) {
    std::cerr << error.what() << "\n";
    return 1;
  }
  return 0;
}
