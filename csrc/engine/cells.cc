// The cells' layouts and names (deeprnn/stacked.h), from their descriptions (csrc/cells/<cell>/cell.h).
#include "cells/gru/cell.h"
#include "cells/lstm/cell.h"
#include "cells/rnn/cell.h"
#include "deeprnn/stacked.h"

namespace deeprnn {

CellLayout LayoutOf(Cell cell) {
  switch (cell) {
    case Cell::kTanh: return RnnCell<Cell::kTanh>::kLayout;
    case Cell::kRelu: return RnnCell<Cell::kRelu>::kLayout;
    case Cell::kGru: return GruCell::kLayout;
    case Cell::kLstm: return LstmCell::kLayout;
  }
  return {};
}

const char* CellName(Cell cell) {
  switch (cell) {
    case Cell::kTanh: return "tanh";
    case Cell::kRelu: return "relu";
    case Cell::kGru: return "gru";
    case Cell::kLstm: return "lstm";
  }
  return "?";
}

bool CellFromName(const std::string& name, Cell* cell) {
  for (Cell c : {Cell::kTanh, Cell::kRelu, Cell::kGru, Cell::kLstm}) {
    if (name == CellName(c)) {
      *cell = c;
      return true;
    }
  }
  return false;
}

}  // namespace deeprnn
